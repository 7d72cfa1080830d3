# A DNS server on 127.0.0.1:53 (in a network namespace): answers fast.test
# at once, holds slow.test's queries (never answers them).
import socket, struct, sys, os
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(sys.argv[1], "w").close()  # ready
held = 0
while True:
    q, addr = s.recvfrom(512)
    tid, flags, qd = struct.unpack(">HHH", q[:6])
    # parse qname
    i = 12; labels = []
    while q[i]:
        n = q[i]; labels.append(q[i+1:i+1+n].decode()); i += 1 + n
    qtype = struct.unpack(">H", q[i+1:i+3])[0]
    name = ".".join(labels)
    question = q[12:i+5]
    with open(sys.argv[1] + ".log", "a") as f: f.write("%s %d %s\n" % (name, qtype, addr))
    if name.startswith("slow"):
        held += 1
        with open(sys.argv[1] + ".held", "a") as f: f.write(name + "\n")
        continue
    if qtype == 1:
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
        resp = struct.pack(">HHHHHH", tid, 0x8180, 1, 1, 0, 0) + question + ans
    else:
        resp = struct.pack(">HHHHHH", tid, 0x8180, 1, 0, 0, 0) + question
    s.sendto(resp, addr)
