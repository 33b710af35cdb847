"""NIST P-256 point arithmetic for the emulated plug's SPAKE2+ side (Jacobian coordinates).

The ``cryptography`` package offers ECDH and ECDSA but no point addition, which SPAKE2+
needs. This is slow pure Python (a few ms per multiplication) and only serves the emulator.
"""

from __future__ import annotations

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

Point = tuple[int, int] | None  # affine; None is the point at infinity
_Jac = tuple[int, int, int]


def on_curve(pt: Point) -> bool:
    if pt is None:
        return False
    x, y = pt
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _double(p: _Jac) -> _Jac:
    x, y, z = p
    if y == 0 or z == 0:
        return (0, 1, 0)
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = 3 * (x - zz) * (x + zz) % P
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add(p: _Jac, q: _Jac) -> _Jac:
    if p[2] == 0:
        return q
    if q[2] == 0:
        return p
    x1, y1, z1 = p
    x2, y2, z2 = q
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    if u1 == u2:
        return _double(p) if s1 == s2 else (0, 1, 0)
    h, r = (u2 - u1) % P, (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    return x3, (r * (v - x3) - s1 * hhh) % P, h * z1 * z2 % P


def _affine(p: _Jac) -> Point:
    x, y, z = p
    if z == 0:
        return None
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


def _jac(pt: Point) -> _Jac:
    return (0, 1, 0) if pt is None else (pt[0], pt[1], 1)


def add(p: Point, q: Point) -> Point:
    return _affine(_add(_jac(p), _jac(q)))


def neg(p: Point) -> Point:
    return None if p is None else (p[0], (-p[1]) % P)


def mul(k: int, pt: Point) -> Point:
    acc, base = (0, 1, 0), _jac(pt)
    k %= N
    while k:
        if k & 1:
            acc = _add(acc, base)
        base = _double(base)
        k >>= 1
    return _affine(acc)


def encode(pt: Point) -> bytes:
    """SEC1 uncompressed."""
    if pt is None:
        raise ValueError("point at infinity")
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def decode(data: bytes) -> Point:
    """SEC1 compressed or uncompressed; ValueError if not a point on the curve."""
    if len(data) == 65 and data[0] == 4:
        pt = (int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big"))
    elif len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        y = pow((x * x * x + A * x + B) % P, (P + 1) // 4, P)
        if y & 1 != data[0] & 1:
            y = P - y
        pt = (x, y)
    else:
        raise ValueError("not a SEC1 point")
    if not on_curve(pt):
        raise ValueError("point not on P-256")
    return pt
