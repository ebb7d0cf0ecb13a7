#!/usr/bin/python3
"""checkpoint_client - an SMTP client that speaks RFC 1845 CHECKPOINT.

No client in Debian does, so the tests use this one.  The exchange:

    C: EHLO client.example           S: 250-... 250-CHECKPOINT ...
    C: MAIL FROM:<a@b> TRANSID=<id@client.example>
    C: RCPT TO:<c@d>
    C: DATA                          S: 354 (a new transfer)
                                  or S: 355 <offset> is the transaction offset
    C: <the DATA stream from octet <offset> on, ending with CRLF.CRLF>
                                     S: 250 2.0.0 Ok: queued as <id>

The DATA stream is what follows the DATA line: the message with CRLF line
endings and dot-stuffing, then ".\\r\\n".  After a broken connection the
client sends the same MAIL (same TRANSID), the same RCPTs and DATA again;
a 355 says how much of the stream the server kept, and only the rest is
sent.  By hand:

    checkpoint_client.py 127.0.0.1 2525 alice@example.org bob@localhost \\
        '<1@client.example>' message.eml [--stop-after OCTETS]
"""

import base64
import socket
import sys


def wire_stream(message):
    """message (bytes, any line endings) as the DATA stream: CRLF, dot-stuffed, terminated."""
    lines = message.replace(b'\r\n', b'\n').split(b'\n')
    if lines and lines[-1] == b'':
        lines.pop()
    return b''.join((b'.' + l if l.startswith(b'.') else l) + b'\r\n' for l in lines) + b'.\r\n'


class CheckpointClient:
    def __init__(self, addr, source=None, timeout=30.0):
        self.sock = socket.create_connection(addr, timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.file = self.sock.makefile('rb')
        self.reply()

    def reply(self):
        """(code, [texts]) of one reply."""
        lines = []
        while True:
            line = self.file.readline(4096)
            if not line:
                raise ConnectionError('connection closed, no reply')
            lines.append(line[4:].rstrip(b'\r\n').decode('utf-8', 'replace'))
            if line[3:4] != b'-':
                return int(line[:3]), lines

    def cmd(self, line):
        self.sock.sendall(line.encode() + b'\r\n')
        return self.reply()

    def begin(self, sender, rcpts, transid, auth=None):
        """EHLO, AUTH PLAIN with auth=(user, password), MAIL with TRANSID, RCPTs,
        DATA: the offset to send from (0 after 354)."""
        code, ehlo = self.cmd('EHLO client.example')
        if code != 250 or 'CHECKPOINT' not in ehlo:
            raise RuntimeError('CHECKPOINT not offered: %r' % ehlo)
        if auth is not None:
            token = base64.b64encode(b'\0' + auth[0].encode() + b'\0' + auth[1].encode()).decode()
            code, text = self.cmd('AUTH PLAIN ' + token)
            if code != 235:
                raise RuntimeError('AUTH: %d %r' % (code, text))
        code, text = self.cmd('MAIL FROM:<%s> TRANSID=%s' % (sender, transid))
        if code != 250:
            raise RuntimeError('MAIL: %d %r' % (code, text))
        for r in rcpts:
            code, text = self.cmd('RCPT TO:<%s>' % r)
            if code != 250:
                raise RuntimeError('RCPT: %d %r' % (code, text))
        code, text = self.cmd('DATA')
        if code == 354:
            return 0
        if code == 355:
            return int(text[0].split()[0])
        raise RuntimeError('DATA: %d %r' % (code, text))

    def send(self, stream, offset, stop_after=None):
        """Sends stream[offset:], or only stop_after octets of it; then the final reply (or None)."""
        end = len(stream) if stop_after is None else min(len(stream), offset + stop_after)
        for pos in range(offset, end, 65536):
            self.sock.sendall(stream[pos:min(end, pos + 65536)])
        if end < len(stream):
            return None
        return self.reply()

    def abort(self):
        """Breaks the connection at once (RST), as a failing link would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        self.file.close()		# else the descriptor stays open behind the file object
        self.sock.close()

    def quit(self):
        try:
            self.cmd('QUIT')
        finally:
            self.file.close()
            self.sock.close()


def main(argv):
    host, port, sender, rcpt, transid, path = argv[1:7]
    stop = int(argv[8]) if len(argv) > 8 and argv[7] == '--stop-after' else None
    stream = wire_stream(open(path, 'rb').read())
    c = CheckpointClient((host, int(port)))
    offset = c.begin(sender, [rcpt], transid)
    print('DATA: sending from octet %d of %d' % (offset, len(stream)))
    r = c.send(stream, offset, stop)
    if r is None:
        c.abort()
        print('stopped after %d octets, connection broken' % stop)
        return 1
    print('%d %s' % (r[0], ' '.join(r[1])))
    c.quit()
    return 0 if r[0] == 250 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
