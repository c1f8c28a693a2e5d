#!/usr/bin/python3
"""zmq_peer.py with libzmq's security mechanisms (CURVE, PLAIN) and a ZAP handler.

    /usr/bin/python3 tests/peers/secure_peer.py --type router --bind tcp://127.0.0.1:* \
        --curve-server --curve-secret-key Z85 [zmq_peer options]

Security options (each maps to the libzmq socket option of the same name):
    --curve-server              ZMQ_CURVE_SERVER
    --curve-secret-key Z85      ZMQ_CURVE_SECRETKEY
    --curve-public-key Z85      ZMQ_CURVE_PUBLICKEY (default: derived from the secret key
                                with zmq.curve_public)
    --curve-server-key Z85      ZMQ_CURVE_SERVERKEY
    --plain-server              ZMQ_PLAIN_SERVER
    --plain-username U          ZMQ_PLAIN_USERNAME
    --plain-password P          ZMQ_PLAIN_PASSWORD
    --zap-domain D              ZMQ_ZAP_DOMAIN

A ZAP handler (pyzmq's zmq.auth.thread.ThreadAuthenticator) starts when asked for:
    --zap-curve-allow Z85       admit this CURVE client key (repeatable); others get 400
    --zap-curve-any             admit any CURVE client key
    --zap-plain USER:PASSWORD   admit this PLAIN user (repeatable)
Without one, libzmq's own rules apply: a CURVE server admits any client, a PLAIN server
refuses every client.

Everything else (ops, output, monitor events) is zmq_peer.py's; a refused handshake shows as
{"event": "handshake_failed_auth", "value": 400} with --monitor.
"""

import argparse
import os
import sys

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zmq_peer  # noqa: E402


def parse_security(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--curve-server", action="store_true")
    p.add_argument("--curve-secret-key")
    p.add_argument("--curve-public-key")
    p.add_argument("--curve-server-key")
    p.add_argument("--plain-server", action="store_true")
    p.add_argument("--plain-username")
    p.add_argument("--plain-password")
    p.add_argument("--zap-domain")
    p.add_argument("--zap-curve-allow", action="append", default=[])
    p.add_argument("--zap-curve-any", action="store_true")
    p.add_argument("--zap-plain", action="append", default=[])
    return p.parse_known_args(argv)


class AllowList:
    """ZAP credentials provider: admits the listed CURVE keys (Z85)."""

    def __init__(self, keys):
        self.keys = {k.encode("ascii") for k in keys}

    def callback(self, domain, key):
        # pyzmq passes the key as Z85 already (raw 32 bytes in some versions).
        return (zmq.utils.z85.encode(key) if len(key) == 32 else key) in self.keys


class SecurePeer(zmq_peer.Peer):
    def __init__(self, opts, security):
        self.security = security
        self.auth = None
        super().__init__(opts)

    def configure(self, sock):
        o = self.security
        if o.zap_curve_allow or o.zap_curve_any or o.zap_plain:
            self.auth = ThreadAuthenticator(self.ctx)
            self.auth.start()
            if o.zap_curve_any:
                self.auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
            elif o.zap_curve_allow:
                self.auth.configure_curve_callback(
                    domain="*", credentials_provider=AllowList(o.zap_curve_allow))
            if o.zap_plain:
                users = dict(entry.split(":", 1) for entry in o.zap_plain)
                self.auth.configure_plain(domain="*", passwords=users)
        if o.zap_domain is not None:
            sock.setsockopt_string(zmq.ZAP_DOMAIN, o.zap_domain)
        if o.curve_server:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
        if o.curve_secret_key is not None:
            secret = o.curve_secret_key.encode("ascii")
            public = (o.curve_public_key.encode("ascii") if o.curve_public_key
                      else zmq.curve_public(secret))
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        if o.curve_server_key is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, o.curve_server_key.encode("ascii"))
        if o.plain_server:
            sock.setsockopt(zmq.PLAIN_SERVER, 1)
        if o.plain_username is not None:
            sock.setsockopt_string(zmq.PLAIN_USERNAME, o.plain_username)
        if o.plain_password is not None:
            sock.setsockopt_string(zmq.PLAIN_PASSWORD, o.plain_password)

    def close(self):
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        super().close()


def main():
    security, rest = parse_security(sys.argv[1:])
    opts = zmq_peer.parse_args(rest)
    if not zmq.has("curve"):
        zmq_peer.emit({"error": "this libzmq has no CURVE support"})
        return 1
    try:
        peer = SecurePeer(opts, security)
    except zmq.ZMQError as e:
        zmq_peer.emit({"error": f"setup failed: {zmq_peer.zmq_error_text(e)}"})
        return 1
    peer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
