"""Kernel-side peers for behaviour.py: TCP echo on 7001, a TCP sink that
starts reading only after 1.5 s on 7002, UDP echo on 7003, and on 7004
a counter that reads to EOF and answers with the byte count."""
import socket, sys, threading, time

ip = sys.argv[1]

def echo_conn(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)

def listener(port):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((ip, port))
    l.listen(16)
    return l

def serve(l, handler):
    while True:
        c, _ = l.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()

def sink_conn(c):
    with c:
        time.sleep(1.5)
        while c.recv(65536):
            pass

def count_conn(c):
    with c:
        n = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            n += len(d)
        c.sendall(b"%d" % n)

def udp_echo(u):
    while True:
        d, a = u.recvfrom(65536)
        u.sendto(d, a)

# Everything bound before anything is served: a client that got through
# to one port finds the others open.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((ip, 7003))
servers = [(listener(7002), sink_conn), (listener(7004), count_conn), (listener(7001), echo_conn)]
threading.Thread(target=udp_echo, args=(u,), daemon=True).start()
for l, handler in servers:
    threading.Thread(target=serve, args=(l, handler), daemon=True).start()
print("peer ready", flush=True)
time.sleep(300)
