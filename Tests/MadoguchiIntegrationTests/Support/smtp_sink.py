"""A real SMTP server for the delivery tests (aiosmtpd, from Debian's python3-aiosmtpd).

Every message whose DATA reaches the server is saved as DIR/<n>.eml with DIR/<n>.json beside it
(envelope, and the reply the server gave), whatever it answers: the tests count what the server
*received*, which is what a customer would get twice if a reply went out twice.

Behaviour is read from CONTROL (a JSON file, re-read at every step, so a test changes it while the
server runs):
  rcpt:        {"address": "550 5.1.1 no such user", ...}   reply to RCPT TO for these addresses
  data:        ["451 4.3.0 try later", ...]                  replies to successive DATA ends (then 250)
  drop_after_data: n                                          close without replying after the next n DATA ends
  delay_after_data: seconds                                   wait before replying to DATA end
  delay_rcpt:  seconds                                        wait before replying to RCPT TO
  mail_from:   "421 4.3.2 shutting down"                      reply to MAIL FROM
  ehlo:        "502 5.5.2 command not recognized"            reply to EHLO (a relay that knows only HELO)
Prints "port N" on stdout once listening.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def control(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Handler:
    def __init__(self, directory, control_path, implicit_tls=False):
        self.implicit_tls = implicit_tls
        self.directory = directory
        self.control_path = control_path
        self.count = len([n for n in os.listdir(directory) if n.endswith(".eml")])
        self.data_ends = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = control(self.control_path).get("mail_from")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        settings = control(self.control_path)
        if settings.get("delay_rcpt"):
            await asyncio.sleep(settings["delay_rcpt"])
        reply = settings.get("rcpt", {}).get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        settings = control(self.control_path)
        index = self.data_ends
        self.data_ends += 1
        replies = settings.get("data", [])
        reply = replies[index] if index < len(replies) else "250 2.0.0 Ok: queued as Q%04d" % (self.count + 1)
        dropped = index < settings.get("drop_after_data", 0)
        self.count += 1
        name = os.path.join(self.directory, "%04d" % self.count)
        with open(name + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(name + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "mail_options": envelope.mail_options,
                       "reply": None if dropped else reply, "tls": self.implicit_tls or session.ssl is not None}, f)
        delay = settings.get("delay_after_data", 0)
        if delay:
            await asyncio.sleep(delay)
        if dropped:
            server.transport.close()
            return "250 never sent"
        return reply


class Sink(SMTP):
    """aiosmtpd's server, which can refuse EHLO as an old relay or appliance that knows only HELO does."""
    def __init__(self, *args, control_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.control_path = control_path

    async def smtp_EHLO(self, hostname):
        reply = control(self.control_path).get("ehlo")
        if reply:
            await self.push(reply)
            return
        await super().smtp_EHLO(hostname)


class Garbage(asyncio.Protocol):
    """A 'relay' that answers nonsense."""
    def connection_made(self, transport):
        transport.write(b"HELLO THIS IS NOT SMTP\r\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth", help="user:password required before MAIL")
    parser.add_argument("--garbage", action="store_true")
    args = parser.parse_args()

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    handler = Handler(args.dir, args.control, implicit_tls=args.implicit_tls)

    def authenticator(server, session, envelope, mechanism, auth_data):
        user, password = args.auth.split(":", 1)
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok)

    def factory():
        if args.garbage:
            return Garbage()
        return Sink(handler, control_path=args.control, hostname="sink.test", data_size_limit=40 * 1024 * 1024, enable_SMTPUTF8=True,
                    tls_context=None if args.implicit_tls else context, require_starttls=False,
                    authenticator=authenticator if args.auth else None, auth_required=bool(args.auth), auth_require_tls=False)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", args.port, ssl=context if args.implicit_tls else None, reuse_address=True)
        print("port %d" % server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
