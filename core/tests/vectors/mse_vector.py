# An independent computation of MSE step 1-4 bytes for fixed keys (Python's pow and hashlib,
# RC4 written out), used as the known-answer vector in core/src/mse.rs's tests.
import hashlib
P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)
def h(*parts): return hashlib.sha1(b"".join(parts)).digest()
def rc4(key):
    S = list(range(256)); j = 0
    for i in range(256):
        j = (j + S[i] + key[i % len(key)]) % 256; S[i], S[j] = S[j], S[i]
    i = j = 0
    while True:
        i = (i + 1) % 256; j = (j + S[i]) % 256; S[i], S[j] = S[j], S[i]
        yield S[(S[i] + S[j]) % 256]
def stream(key):
    g = rc4(key)
    for _ in range(1024): next(g)
    return g
def enc(g, data): return bytes(b ^ next(g) for b in data)
xa = int.from_bytes(bytes(range(1, 21)), "big")
xb = int.from_bytes(bytes(range(101, 121)), "big")
skey = bytes(range(200, 220))
ya = pow(2, xa, P).to_bytes(96, "big"); yb = pow(2, xb, P).to_bytes(96, "big")
s = pow(int.from_bytes(yb, "big"), xa, P).to_bytes(96, "big")
assert s == pow(int.from_bytes(ya, "big"), xb, P).to_bytes(96, "big")
ia = b"\x13BitTorrent protocol"
a = stream(h(b"keyA", s, skey)); b = stream(h(b"keyB", s, skey))
req2x3 = bytes(x ^ y for x, y in zip(h(b"req2", skey), h(b"req3", s)))
step3 = h(b"req1", s) + req2x3 + enc(a, b"\0" * 8 + (3).to_bytes(4, "big") + (0).to_bytes(2, "big") + len(ia).to_bytes(2, "big") + ia)
step4 = enc(b, b"\0" * 8 + (2).to_bytes(4, "big") + (0).to_bytes(2, "big"))
after_a = enc(a, b"hello from A"); after_b = enc(b, b"hello from B")
print("ya", h(ya).hex()); print("yb", h(yb).hex()); print("s", h(s).hex())
print("step3", step3.hex()); print("step4", step4.hex())
print("after_a", after_a.hex()); print("after_b", after_b.hex())
