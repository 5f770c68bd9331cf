#!/usr/bin/env python3
"""Makes keys and signs JWTs for the access-control benchmark, with openssl and the standard library.

  bench/jwt.py keys DIR                     # DIR/es256.key|pub (P-256) and DIR/rs256.key|pub (RSA 2048)
  bench/jwt.py token --alg ES256 --key DIR/es256.key [--kid K] [--ttl S] [--claims JSON]

`token` prints one compact JWS. Its payload is {"sub":"bench","iat":now,"exp":now+ttl} plus --claims
(default {"feeds":["/feed"]}). ES256 signatures are the raw r||s of JWS (RFC 7518 §3.4), converted from
the DER that `openssl dgst -sign` writes; RS256 is PKCS#1 v1.5 with SHA-256, as openssl writes it.
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def der_ecdsa_to_raw(der: bytes, size: int) -> bytes:
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, each `size` bytes."""

    def read_length(at: int):
        first = der[at]
        if first < 0x80:
            return first, at + 1
        count = first & 0x7F
        return int.from_bytes(der[at + 1 : at + 1 + count], "big"), at + 1 + count

    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    _, at = read_length(1)
    parts = []
    for _ in range(2):
        if der[at] != 0x02:
            raise ValueError("not a DER integer")
        length, at = read_length(at + 1)
        value = der[at : at + length].lstrip(b"\x00")
        if len(value) > size:
            raise ValueError("integer longer than the curve's size")
        parts.append(value.rjust(size, b"\x00"))
        at += length
    return parts[0] + parts[1]


def sign(alg: str, key: str, signing_input: bytes) -> bytes:
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", key],
        input=signing_input,
        capture_output=True,
        check=True,
    ).stdout
    if alg == "ES256":
        return der_ecdsa_to_raw(signature, 32)
    return signature


def token(alg: str, key: str, kid: str | None, ttl: int, claims: dict) -> str:
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    now = int(time.time())
    payload = {"sub": "bench", "iat": now, "exp": now + ttl, **claims}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    return signing_input + "." + b64url(sign(alg, key, signing_input.encode("ascii")))


def keys(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True)

    es, rs = os.path.join(directory, "es256"), os.path.join(directory, "rs256")
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", es + ".key")
    run("openssl", "ec", "-in", es + ".key", "-pubout", "-out", es + ".pub")
    run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rs + ".key")
    run("openssl", "pkey", "-in", rs + ".key", "-pubout", "-out", rs + ".pub")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make_keys = commands.add_parser("keys")
    make_keys.add_argument("directory")
    make_token = commands.add_parser("token")
    make_token.add_argument("--alg", choices=["ES256", "RS256"], required=True)
    make_token.add_argument("--key", required=True, help="the private key's PEM file")
    make_token.add_argument("--kid")
    make_token.add_argument("--ttl", type=int, default=3600)
    make_token.add_argument("--claims", default='{"feeds":["/feed"]}')
    args = parser.parse_args()
    if args.command == "keys":
        keys(args.directory)
    else:
        print(token(args.alg, args.key, args.kid, args.ttl, json.loads(args.claims)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
