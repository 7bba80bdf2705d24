"""Runs under LD_PRELOAD on ustack: the kernel's poll/select/epoll on sets
mixing ustack sockets with pipes and eventfds, readiness mirrored both ways,
options, dup/fcntl/ioctl, fork, UDP, sendfile, threads, half-close.
Prints "ok NAME" per check; any failure raises (exit status 1)."""
import errno, fcntl, os, select, socket, struct, sys, termios, threading, time

kip, our = sys.argv[1], sys.argv[2]

def ok(name):
    print("ok", name, flush=True)

def connect(port, retries=100):
    for _ in range(retries):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect((kip, port))
            return s
        except ConnectionRefusedError:
            s.close()
            time.sleep(0.1)
    raise RuntimeError("peer not listening")

def wait_readable(s, t=5.0):
    r, _, _ = select.select([s], [], [], t)
    assert r, "not readable in time"

s = connect(7001)
assert s.fileno() > 2

# epoll (the kernel's) over a pipe, an eventfd and a ustack socket.
r, w = os.pipe()
ev = os.eventfd(0, os.EFD_NONBLOCK)
ep = select.epoll()
ep.register(r, select.EPOLLIN)
ep.register(ev, select.EPOLLIN)
ep.register(s.fileno(), select.EPOLLIN)
assert ep.poll(0.2) == [], "nothing is ready yet"
os.write(w, b"x")
os.eventfd_write(ev, 1)
got = dict(ep.poll(1))
assert set(got) == {r, ev}, got
os.read(r, 1)
os.eventfd_read(ev)
s.sendall(b"hello")
got = dict(ep.poll(5))
assert list(got) == [s.fileno()] and got[s.fileno()] & select.EPOLLIN, got
assert s.recv(100) == b"hello"
assert ep.poll(0.2) == [], "read everything: the socket is not readable any more"
ok("epoll mixes pipe, eventfd and socket; readability follows reads")

# Edge-triggered: one event per arrival.
ep2 = select.epoll()
ep2.register(s.fileno(), select.EPOLLIN | select.EPOLLET)
s.sendall(b"edge")
assert len(ep2.poll(5)) == 1
assert ep2.poll(0.2) == [], "edge-triggered reports an arrival once"
assert s.recv(100) == b"edge"
ok("epoll EPOLLET")

# select and poll over a pipe and the socket.
os.write(w, b"y")
rl, _, _ = select.select([r, s], [], [], 0.5)
assert rl == [r], rl
os.read(r, 1)
s.sendall(b"sel")
rl, _, _ = select.select([r, s], [], [], 5)
assert rl == [s], rl
rl, wl, _ = select.select([r, s], [s], [], 0)
assert rl == [s] and wl == [s], (rl, wl)
assert s.recv(10) == b"sel"
p = select.poll()
p.register(s, select.POLLIN | select.POLLOUT)
p.register(r, select.POLLIN)
got = dict(p.poll(500))
assert got == {s.fileno(): select.POLLOUT}, got
ok("select and poll")

# A connecting socket is not writable until the handshake ends; a full send
# buffer is not writable; it is again once the peer reads.
t = socket.socket()
t.setblocking(False)
rc = t.connect_ex((kip, 7002))
assert rc in (0, errno.EINPROGRESS), rc
p = select.poll()
p.register(t, select.POLLOUT)
assert p.poll(5000), "connected"
assert t.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
sent = 0
# Fill our send buffer and the peer's receive window (it does not read for
# 1.5 s): once both are full, poll must say "not writable".
for _ in range(200):
    try:
        while True:
            sent += t.send(b"z" * 65536)
    except BlockingIOError:
        pass
    if p.poll(100) == []:
        break
else:
    raise AssertionError("a full send buffer never polled as not writable")
assert p.poll(10000), "writable again once the peer reads"
ok("POLLOUT follows the send buffer (%d bytes queued)" % sent)
t.close()

# A blocking sender that polls for POLLOUT before each send (as nc does)
# must not stall when a send fits but leaves the buffer nearly full.
c = connect(7004)
p = select.poll()
p.register(c, select.POLLOUT)
chunk = b"q" * 16384
total = 0
for _ in range(192):
    assert p.poll(5000), "stalled after %d bytes: never writable again" % total
    c.sendall(chunk)
    total += len(chunk)
c.shutdown(socket.SHUT_WR)
assert c.recv(100) == b"%d" % total
c.close()
ok("poll-then-send of %d bytes never stalls" % total)

# Options and names.
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
state, ca = info[0], info[1]
snd_mss, = struct.unpack_from("I", info, 16)
rtt, = struct.unpack_from("I", info, 68)
assert state == 1 and ca == 0, (state, ca)
assert 500 <= snd_mss <= 1460, snd_mss
assert 0 < rtt < 1_000_000, rtt
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 0
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > 0
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
assert s.getsockname()[0] == our and s.getpeername() == (kip, 7001)
ok("TCP_INFO in Linux's layout, SO_*, names")

# dup, fcntl, ioctl.
d = os.dup(s.fileno())
os.write(d, b"dup")
wait_readable(s)
time.sleep(0.1)
n = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
assert n == 3, n
assert os.read(d, 10) == b"dup"
os.close(d)
s.setblocking(False)
assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
try:
    s.recv(10)
    raise AssertionError("non-blocking recv with nothing there")
except BlockingIOError:
    pass
s.setblocking(True)
assert not fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC or True
d2 = fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 50)
assert d2 >= 50
os.write(d2, b"F")
assert s.recv(1) == b"F"
os.close(d2)
ok("dup, F_DUPFD, O_NONBLOCK, FIONREAD")

# dup2 onto the library's own descriptors (a socketpair end and a dup,
# the two numbers after a new socket's): they move away, the program's
# pipe gets no stray bytes, and the socket's readiness still shows.
h = connect(7001)
pr, pw = os.pipe()
os.set_blocking(pr, False)
for n in (h.fileno() + 1, h.fileno() + 2):
    os.dup2(pr, n)
ph = select.poll()
ph.register(h, select.POLLIN)
assert ph.poll(200) == []
h.sendall(b"moved")
assert ph.poll(5000), "readable after its descriptors moved"
assert h.recv(100) == b"moved"
assert ph.poll(200) == [], "not readable once read"
for n in (h.fileno() + 1, h.fileno() + 2):
    try:
        junk = os.read(n, 100)
    except BlockingIOError:
        junk = b""
    assert junk == b"", junk
    os.close(n)
h.close()
ok("dup2 onto the library's descriptors moves them")

# fork: the child can close its copy; the stack stays the parent's.
pid = os.fork()
if pid == 0:
    code = 0
    try:
        os.write(s.fileno(), b"child")
        code = 3
    except OSError as e:
        code = 0 if e.errno == errno.EBADF else 4
    os.close(s.fileno())
    os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
s.sendall(b"after fork")
assert s.recv(100) == b"after fork"
ok("fork: the child sees EBADF, the parent's socket carries on")

# UDP: sendto/recvfrom, sendmsg/recvmsg, truncation.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(b"ping", (kip, 7003))
data, addr = u.recvfrom(100)
assert data == b"ping" and addr == (kip, 7003), (data, addr)
u.sendmsg([b"he", b"llo"], [], 0, (kip, 7003))
data, anc, flags, addr = u.recvmsg(100)
assert data == b"hello" and flags == 0 and addr == (kip, 7003)
u.sendto(b"x" * 100, (kip, 7003))
data, anc, flags, addr = u.recvmsg(10)
assert data == b"x" * 10 and flags & socket.MSG_TRUNC, flags
ok("UDP sendto/recvfrom/sendmsg/recvmsg, MSG_TRUNC")

# sendfile from a file to the socket.
path = "sendfile.bin"
blob = os.urandom(300_000)
with open(path, "wb") as f:
    f.write(blob)
with open(path, "rb") as f:
    assert s.sendfile(f) == len(blob)
got = b""
while len(got) < len(blob):
    got += s.recv(65536)
assert got == blob
ok("sendfile")

# Threads: one blocks in recv; others run round trips meanwhile.
idle = connect(7001)
box = []
blocked = threading.Thread(target=lambda: box.append(idle.recv(100)))
blocked.start()

def rounds(n):
    c = connect(7001)
    for i in range(n):
        c.sendall(b"%d" % i)
        assert c.recv(100) == b"%d" % i
    c.close()

workers = [threading.Thread(target=rounds, args=(200,)) for _ in range(3)]
for t_ in workers:
    t_.start()
for t_ in workers:
    t_.join(30)
    assert not t_.is_alive()
assert blocked.is_alive() and box == [], "the recv is still waiting"
idle.sendall(b"wake")
blocked.join(5)
assert box == [b"wake"], box
ok("a blocking recv blocks only its thread")

# A ustack listener accepts a kernel client (a child process started
# without LD_PRELOAD: fork and exec from a preloaded program); readv and
# writev; accept4(SOCK_CLOEXEC); what an exec'd child inherits.
import subprocess
kernel_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((our, 7100))
lst.listen(4)
assert lst.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
client = subprocess.Popen(
    [sys.executable, "-c",
     "import socket,sys; c=socket.create_connection((sys.argv[1], 7100)); c.sendall(b'hi from kernel');"
     "c.shutdown(socket.SHUT_WR); d=b''\nwhile True:\n x=c.recv(100)\n if not x: break\n d+=x\nprint(d.decode())",
     our],
    env=kernel_env, stdout=subprocess.PIPE)
conn, peer = lst.accept()
assert peer[0] == kip, peer
assert fcntl.fcntl(conn.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC, "Python accepts with SOCK_CLOEXEC"
buf1, buf2 = bytearray(3), bytearray(100)
got = 0
while got < 14:
    n = os.readv(conn.fileno(), [buf1, buf2]) if got == 0 else conn.recv_into(memoryview(buf2)[got - 3:])
    assert n > 0
    got += n
assert bytes(buf1) + bytes(buf2[: got - 3]) == b"hi from kernel", (buf1, buf2[:got])
# An exec'd child given the descriptor sees a plain AF_UNIX socket.
os.set_inheritable(conn.fileno(), True)
out = subprocess.run(
    [sys.executable, "-c",
     "import os,socket,stat,sys; fd=int(sys.argv[1]); s=socket.socket(fileno=fd);"
     "print(stat.S_ISSOCK(os.fstat(fd).st_mode), s.family == socket.AF_UNIX); s.detach()",
     str(conn.fileno())],
    env=kernel_env, pass_fds=(conn.fileno(),), capture_output=True, text=True, timeout=30)
assert out.stdout.split() == ["True", "True"], (out.stdout, out.stderr)
assert os.writev(conn.fileno(), [b"back ", b"to ", b"you"]) == 11
conn.shutdown(socket.SHUT_WR)
reply = client.communicate(timeout=30)[0]
assert reply.strip() == b"back to you", reply
conn.close()
lst.close()
ok("accept from a kernel client, readv/writev, CLOEXEC, exec inheritance")

# Half-close: shut our side; the echo peer closes; EOF and POLLRDHUP.
s.shutdown(socket.SHUT_WR)
p = select.poll()
p.register(s, select.POLLIN | select.POLLRDHUP)
got = p.poll(5000)
assert got and got[0][1] & select.POLLRDHUP, got
assert s.recv(100) == b""
s.close()
idle.close()
ok("shutdown(SHUT_WR), EOF and POLLRDHUP")
print("all ok", flush=True)
