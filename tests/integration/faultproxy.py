#!/usr/bin/env python3
"""Fault-injecting HTTP proxy for the S3 tests: forwards requests to an
upstream S3 server (RGW) unchanged, Host header included so signatures still
verify, and injects faults chosen by rules:

  faultproxy.py --upstream http://127.0.0.1:PORT --port-file F [--log L] RULE...

A RULE is WHICH=ACTION.
  WHICH:  N         the N-th request (1-based, all requests counted)
          METHOD    every request with that method (GET, PUT, POST, HEAD, DELETE)
          METHOD*K  the first K requests with that method
          all       every request
          every:K   every K-th request
          rand:P    each request with probability P (0 to 1), seeded, so that
                    retries do not keep landing on the same counter multiple
          ~TEXT     requests whose path or query contains TEXT (add *K to limit)
          METHOD~TEXT  both
  ACTION: drop      close the connection without an answer
          reset     close with a TCP reset
          500       answer 500 InternalError
          503       answer 503 SlowDown
          429       answer 429 SlowDown
          status:CODE:S3CODE[:HEADER:VALUE]  answer CODE with an S3 <Error> of
                    that Code (and the header), e.g.
                    status:301:PermanentRedirect:x-amz-bucket-region:eu-west-1
          delay:S   wait S seconds, then forward
          truncate  forward, but send only half of the response body and close
          lose      forward, then close without passing the answer on
The first matching rule wins. Each request is logged to the log file as
"N METHOD PATH -> ACTION STATUS". Stop it with SIGTERM.
"""
import argparse
import http.client
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import random

lock = threading.Lock()
counter = 0
method_counts = {}
rules = []
log_file = None
upstream = None
rng = random.Random(20261122)


def parse_rule(text):
    which, sep, action = text.rpartition("=")
    if not sep or not which or not action:
        raise ValueError("rule %r: expected WHICH=ACTION" % text)
    limit = None
    if "*" in which:
        which, _, k = which.rpartition("*")
        limit = int(k)
    return {"which": which, "limit": limit, "hits": 0, "action": action}


def choose(n, method, target):
    """The action for request n (called with lock held)."""
    for r in rules:
        w = r["which"]
        if w.isdigit():
            match = n == int(w)
        elif w == "all":
            match = True
        elif w.startswith("every:"):
            match = n % int(w[6:]) == 0
        elif w.startswith("rand:"):
            match = rng.random() < float(w[5:])
        elif "~" in w:
            m, _, text = w.partition("~")
            match = (not m or m == method) and text in target
        else:
            match = w == method
        if match and (r["limit"] is None or r["hits"] < r["limit"]):
            r["hits"] += 1
            return r["action"]
    return "pass"


def log(line):
    if log_file:
        with lock:
            with open(log_file, "a") as f:
                f.write(line + "\n")


ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
             '<Message>injected by faultproxy</Message><RequestId>faultproxy-%d</RequestId></Error>')


class Handler(socketserver.StreamRequestHandler):
    def read_request(self):
        line = self.rfile.readline(65537)
        if not line:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            return None
        headers = []
        while True:
            h = self.rfile.readline(65537)
            if not h or h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        length = 0
        chunked = False
        for name, value in headers:
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
            headers.append(("Content-Length", str(len(body))))
        else:
            body = self.rfile.read(length) if length else b""
        return parts[0], parts[1], headers, body

    def send(self, status, reason, headers, body, send_body=True):
        out = ["HTTP/1.1 %d %s" % (status, reason)]
        for k, v in headers:
            out.append("%s: %s" % (k, v))
        self.wfile.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        if send_body and body:
            self.wfile.write(body)
        self.wfile.flush()

    def handle(self):
        global counter
        while True:
            try:
                req = self.read_request()
            except (ConnectionError, ValueError):
                return
            if req is None:
                return
            method, target, headers, body = req
            with lock:
                counter += 1
                n = counter
                action = choose(n, method, target)
            if action in ("drop", "reset"):
                log("%d %s %s -> %s" % (n, method, target, action))
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if action in ("500", "503", "429") or action.startswith("status:"):
                extra = []
                if action.startswith("status:"):
                    fields = action.split(":", 4)
                    status, code = int(fields[1]), fields[2]
                    if len(fields) > 4:
                        extra.append((fields[3], fields[4]))
                else:
                    status = int(action)
                    code = {"500": "InternalError", "503": "SlowDown", "429": "SlowDown"}[action]
                xml = (ERROR_XML % (code, n)).encode()
                log("%d %s %s -> %s" % (n, method, target, action))
                self.send(status, code, [("Content-Type", "application/xml"),
                                         ("Content-Length", str(len(xml))),
                                         ("x-amz-request-id", "faultproxy-%d" % n)] + extra,
                          xml, method != "HEAD")
                continue
            if action.startswith("delay:"):
                time.sleep(float(action[6:]))
            try:
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    if k.lower() not in ("connection", "keep-alive", "proxy-connection"):
                        conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                data = resp.read()
                rheaders = [(k, v) for k, v in resp.getheaders()
                            if k.lower() not in ("transfer-encoding", "connection", "keep-alive",
                                                 "content-length")]
                conn.close()
            except OSError as e:
                log("%d %s %s -> upstream error %s" % (n, method, target, e))
                self.connection.close()
                return
            if action == "lose":
                log("%d %s %s -> lose %d" % (n, method, target, resp.status))
                self.connection.close()
                return
            if method == "HEAD":
                length = resp.getheader("Content-Length", "0")
            else:
                length = str(len(data))
            rheaders.append(("Content-Length", length))
            if action == "truncate" and method != "HEAD" and len(data) > 1:
                log("%d %s %s -> truncate %d (%d of %d bytes)"
                    % (n, method, target, resp.status, len(data) // 2, len(data)))
                self.send(resp.status, resp.reason, rheaders, data[: len(data) // 2])
                self.connection.close()
                return
            if action == "truncate":
                action = "pass (no body to truncate)"
            log("%d %s %s -> %s %d" % (n, method, target, action, resp.status))
            self.send(resp.status, resp.reason, rheaders, data, method != "HEAD")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global rules, log_file, upstream
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("rules", nargs="*")
    args = ap.parse_args()
    rules = [parse_rule(r) for r in args.rules]
    log_file = args.log
    upstream = urllib.parse.urlsplit(args.upstream)
    srv = Server(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        import os
        os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()
    srv.server_close()


if __name__ == "__main__":
    sys.exit(main())
