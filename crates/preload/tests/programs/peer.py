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

def serve(port, handler):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((ip, port))
    l.listen(16)
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

def udp_echo():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((ip, 7003))
    while True:
        d, a = u.recvfrom(65536)
        u.sendto(d, a)

threading.Thread(target=serve, args=(7001, echo_conn), daemon=True).start()
threading.Thread(target=serve, args=(7002, sink_conn), daemon=True).start()
threading.Thread(target=serve, args=(7004, count_conn), daemon=True).start()
threading.Thread(target=udp_echo, daemon=True).start()
print("peer ready", flush=True)
time.sleep(300)
