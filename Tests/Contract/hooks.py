"""Schemathesis hooks for Madoguchi's contract run (Tests/Contract/run).

`POST /v1/inbound/email` takes `message/rfc822`, which Schemathesis cannot serialize on its own.
A generated string is sent as a mail in one of three shapes, chosen from the string itself so a
shrunk failure replays the same way:
- as it is (mostly "not a mail": the service must answer 202 and keep the bytes);
- as the body of a plain mail whose Subject and From name also carry it (a ticket);
- as a multipart mail whose boundary, charset and filename parameters carry it (the MIME reader).
"""
import hashlib

import schemathesis


def _mail(text: str) -> bytes:
    shape = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[0] % 3
    # Header fields are one line each: fold away the generated text's own line breaks.
    one_line = " ".join(text.splitlines()) or "x"
    if shape == 0:
        return text.encode("utf-8", "surrogatepass")
    if shape == 1:
        return (
            f"From: {one_line} <customer@example.com>\r\n"
            f"To: support@example.com\r\n"
            f"Subject: {one_line}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{text}\r\n"
        ).encode("utf-8", "surrogatepass")
    return (
        f"From: customer@example.com\r\n"
        f"To: support@example.com\r\n"
        f"Subject: =?utf-8?B?{one_line}?=\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: multipart/mixed; boundary=\"{one_line[:60]}\"\r\n"
        f"\r\n--{one_line[:60]}\r\n"
        f"Content-Type: text/plain; charset=\"{one_line[:20]}\"\r\n"
        f"\r\n{text}\r\n"
        f"--{one_line[:60]}\r\n"
        f"Content-Type: application/octet-stream; name*=utf-8''{one_line[:40]}\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f"\r\n{one_line}\r\n"
        f"--{one_line[:60]}--\r\n"
    ).encode("utf-8", "surrogatepass")


@schemathesis.serializer("message/rfc822")
def rfc822(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": _mail(value if isinstance(value, str) else str(value))}
