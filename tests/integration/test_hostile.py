#!/usr/bin/python3
"""test_hostile - the relay's SMTP client against a hostile or broken server.

The smarthost is a raw-socket script in this process (Hostile) that plays
one step of the dialogue wrong and every other right.  Messages come in
over SMTP to the gateway's own listener (no FUSE needed).  Each case is
checked by what the gateway records (queue/ sent/ failed/ with attempts,
last-reply and each recipient's reply, the smtpd log) and by what the
server received; a deferred message is then delivered by the same server
playing it right (retry_min = 1).

Bounds (smtpd/relay_smtp.h): a reply line of at most RELAY_LINE_MAX - 2 =
2046 octets, a reply of at most RELAY_REPLY_LINES_MAX = 100 lines.  Within
them a reply is read (2 KB multi-line replies to EHLO, MAIL, the dot);
past them, 64 KB or endless replies, it is a protocol error (451 4.5.0,
deferred) and smtpd's VmRSS stays flat.  Replies cut mid-line (closed,
stalled, a continuation then close), malformed codes (2x0, 99, 600, NUL
in the code, a code that changes between lines, a bad separator) defer.
A server that stalls before its greeting times out (command_timeout) and
defers; one that stalls after the end of data too, after data_done_timeout
(RFC 5321 4.5.3.2.6), which is what applies there and command_timeout not; one that keeps talking after QUIT (a 250
every half second, or one octet at a time) is hung up on all the same; a 554 to a pipelined MAIL fails the message
with no data sent; a 5xx greeting fails it with nothing sent.
AUTH answered with 454 (temporary failure) or 432 (password transition,
RFC 4954) defers the message with the server's reply in the record, no
MAIL sent, and the next attempt that authenticates delivers it.
"""

import os
import pwd
import re
import smtplib
import socket
import socketserver
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, parse_record, wait_until

LINE_MAX = 2048 - 2		# RELAY_LINE_MAX - 2: the longest reply line without CRLF
LINES_MAX = 100			# RELAY_REPLY_LINES_MAX
COMMAND_TIMEOUT = 2		# [relay] command_timeout of these tests, seconds
DATA_DONE_TIMEOUT = 5		# [relay] data_done_timeout of these tests: the reply to the dot
STALL_GUARD = 60		# a stalling script gives up after this, whatever happens


def token():
    return uuid.uuid4().hex[:12]


# ---------------------------------------------------------------- the server

GOOD = {
    'greeting': b'220 hostile.test ESMTP\r\n',
    'EHLO': b'250-hostile.test\r\n250-PIPELINING\r\n250 SIZE 20000000\r\n',
    'HELO': b'250 hostile.test\r\n',
    'MAIL': b'250 2.1.0 ok\r\n',
    'RCPT': b'250 2.1.5 ok\r\n',
    'DATA': b'354 go ahead\r\n',
    'DOT': b'250 2.0.0 hostile got it\r\n',
    'QUIT': b'221 2.0.0 bye\r\n',
    'RSET': b'250 2.0.0 ok\r\n',
    'AUTH': b'235 2.7.0 Authentication successful\r\n',	# offered only by AuthRefused's EHLO
}


class Stop(Exception):
    """The script ended the connection (closed or stalled until the client left)."""


class Conn:
    """What the script can do on one connection; what it saw."""

    def __init__(self, handler):
        self.h = handler
        self.cmds = []			# command lines, without CRLF
        self.data = None		# the DATA as received (dot-stuffing undone), if it came
        self.client_closed = False	# the client closed or reset the connection
        self.dot_at = None		# monotonic time the end of data was read
        self.closed_at = None		# monotonic time a stall saw the client go
        self.written = 0		# octets the script sent

    def send(self, b):
        try:
            self.h.wfile.write(b)
            self.h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.client_closed = True
            raise Stop()
        self.written += len(b)

    def close(self):
        raise Stop()

    def stall(self):
        """Say nothing more; read (and drop) until the client goes away."""
        self.h.request.settimeout(STALL_GUARD)
        try:
            while self.h.rfile.read1(4096):
                pass
            self.client_closed = True
        except (socket.timeout, ConnectionResetError):
            self.client_closed = True
        self.closed_at = time.monotonic()
        raise Stop()

    def endless(self, chunk):
        """Send chunk again and again until the client stops reading or closes."""
        while True:
            self.send(chunk)


class Hostile:
    """A raw-socket SMTP server.  script maps a step (greeting, EHLO, MAIL,
    RCPT, DATA, DOT, QUIT) to bytes sent instead of the good reply, or to
    fn(conn) that acts (send, close, stall, endless)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.script = {}
        self.conns = []
        srv = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                conn = Conn(self)
                with srv.lock:
                    srv.conns.append(conn)
                try:
                    srv.dialogue(conn)
                except Stop:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    conn.client_closed = True

        self.server = harness.serve_tcp(Handler)
        self.port = self.server.server_address[1]

    def stop(self):
        harness.stop_tcp(self.server)

    def play(self, conn, step):
        with self.lock:
            act = self.script.get(step, GOOD[step])
        if callable(act):
            act(conn)
        else:
            conn.send(act)

    def dialogue(self, conn):
        rfile = conn.h.rfile
        conn.h.request.settimeout(STALL_GUARD)
        self.play(conn, 'greeting')
        while True:
            line = rfile.readline(4096)
            if not line:
                conn.client_closed = True
                return
            conn.cmds.append(line.rstrip(b'\r\n').decode('ascii', 'replace'))
            verb = line[:4].upper().decode('ascii', 'replace')
            if verb == 'DATA':
                self.play(conn, 'DATA')
                lines = []
                while True:
                    dl = rfile.readline(1 << 20)
                    if not dl:
                        conn.client_closed = True
                        return
                    if dl == b'.\r\n':
                        break
                    lines.append(dl[1:] if dl.startswith(b'.') else dl)
                conn.data = b''.join(lines)
                conn.dot_at = time.monotonic()
                self.play(conn, 'DOT')
            elif verb in GOOD:
                self.play(conn, verb)
                if verb == 'QUIT':
                    return
            else:
                conn.send(b'502 5.5.2 what?\r\n')

    def delivered(self, tok):
        """Connections that got the whole message with tok in it."""
        with self.lock:
            return [c for c in self.conns if c.data is not None and tok.encode() in c.data]


def multiline(code, n, width, last=b'end'):
    """A reply of n lines of width octets each (without CRLF), code on every line."""
    lines = []
    for i in range(n - 1):
        head = b'%d-line %03d ' % (code, i)
        lines.append(head + b'x' * (width - len(head)) + b'\r\n')
    lines.append(b'%d %s\r\n' % (code, last))
    return b''.join(lines)


def ehlo_multiline(n, width):
    """An EHLO reply of n lines: the name, filler keywords, SIZE last."""
    lines = [b'250-hostile.test\r\n']
    for i in range(n - 2):
        head = b'250-X-FILLER%03d ' % i
        lines.append(head + b'y' * (width - len(head)) + b'\r\n')
    lines.append(b'250 SIZE 20000000\r\n')
    return b''.join(lines)


def vm_rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS for %d' % pid)


# ---------------------------------------------------------------- the cases

class HostileCase(unittest.TestCase):
    """One gateway and one hostile server per test: nothing of an earlier
    case's retries can reach the next."""

    def setUp(self):
        self.srv = Hostile()
        self.addCleanup(self.srv.stop)
        self.gw = harness.Instance('hostile', smarthost='127.0.0.1:%d' % self.srv.port,
                                   retry_min=1, retry_max=1, scan_interval=300,
                                   connect_timeout=COMMAND_TIMEOUT,
                                   command_timeout=COMMAND_TIMEOUT,
                                   data_done_timeout=DATA_DONE_TIMEOUT)
        self.addCleanup(self.gw.cleanup)
        self.gw.start_smtpd()

    # ------------------------------------------------------------ helpers

    def submit(self, tok=None):
        """One message for far@example.net through the gateway's listener."""
        tok = tok or token()
        data = ('From: a@example.org\r\nTo: far@example.net\r\nSubject: hostile %s\r\n'
                '\r\nbody %s\r\n' % (tok, tok)).encode()
        with smtplib.SMTP(*self.gw.smtp_addr, timeout=10) as c:
            c.ehlo('client.example')
            self.assertEqual(c.mail('a@example.org')[0], 250)
            self.assertEqual(c.rcpt('far@example.net')[0], 250)
            code, text = c.data(data)
            self.assertEqual(code, 250, text)
        return harness.queued_id(text), tok

    def record(self, msgid):
        where, text = self.gw.find_record(msgid)
        return where, (parse_record(text) if text else None), text

    def wait_record(self, msgid, pred, timeout, what):
        def check():
            where, rec, text = self.record(msgid)
            return (where, rec, text) if rec is not None and pred(where, rec) else None
        try:
            return wait_until(check, timeout, what, interval=0.05)
        except AssertionError:
            where, rec, text = self.record(msgid)
            raise AssertionError('%s; record is in %s:\n%s' % (what, where, text))

    def deferred(self, msgid, reason, timeout=15):
        """The record back in queue/ after an attempt, its recipient pending with
        a 4xx that matches reason (a regex), never in sent/ or failed/."""
        where, rec, text = self.wait_record(
            msgid, lambda w, r: w == 'queue' and int(r.get('attempts', '0')) >= 1, timeout,
            'an attempt of %s to end deferred' % msgid)
        self.assertEqual(rec['rcpt'][0][0], 'pending', text)
        self.assertRegex(rec['rcpt'][0][2], r'^4\d\d ', text)
        self.assertRegex(rec.get('last-reply', ''), reason, text)
        self.assertNotIn(msgid, self.gw.listdir('sent'))
        self.assertNotIn(msgid, self.gw.listdir('failed'))
        log('  deferred: %s' % rec.get('last-reply'))
        return rec

    def heals(self, msgid, tok):
        """The server plays it right: the next attempt delivers, sent/ says 250."""
        with self.srv.lock:
            self.srv.script = {}
        where, rec, text = self.wait_record(msgid, lambda w, r: w == 'sent', 15,
                                            '%s delivered once the server behaves' % msgid)
        self.assertEqual(rec['rcpt'][0][0], 'sent', text)
        self.assertTrue(self.srv.delivered(tok), 'the server never got %s' % tok)
        return rec

    def sent(self, msgid, tok):
        where, rec, text = self.wait_record(msgid, lambda w, r: w in ('sent', 'failed'), 15,
                                            '%s to be settled' % msgid)
        self.assertEqual(where, 'sent', text)
        self.assertEqual(len(self.srv.delivered(tok)), 1)
        return rec, text

    def play(self, **script):
        with self.srv.lock:
            self.srv.script = dict(script)

    def defer_then_heal(self, reason, **script):
        self.play(**script)
        msgid, tok = self.submit()
        rec = self.deferred(msgid, reason)
        self.heals(msgid, tok)
        return rec

    def smtpd_log(self):
        return self.gw.read_log('smtpd')


class Bounded(HostileCase):
    """Replies within relay_smtp's bounds are read; past them, 451 4.5.0."""

    def test_2k_ehlo_reply(self):
        """a 2 KB, 20-line EHLO reply is read (SIZE on its last line is seen)"""
        self.play(EHLO=ehlo_multiline(20, 100))
        msgid, tok = self.submit()
        self.sent(msgid, tok)
        c = self.srv.delivered(tok)[0]
        # SIZE was read from line 20: MAIL carries SIZE=.
        mail = [x for x in c.cmds if x.startswith('MAIL')]
        self.assertEqual(len(mail), 1, c.cmds)
        self.assertIn(' SIZE=', mail[0])

    def test_2k_mail_reply(self):
        """a 2 KB multi-line 250 to MAIL is read"""
        self.play(MAIL=multiline(250, 20, 100))
        msgid, tok = self.submit()
        self.sent(msgid, tok)

    def test_2k_dot_reply(self):
        """a 2 KB multi-line 250 to the dot marks it sent, its text cut at 511 octets with '...'"""
        self.play(DOT=multiline(250, 20, 100))
        msgid, tok = self.submit()
        rec, text = self.sent(msgid, tok)
        reply = rec['rcpt'][0][2]
        self.assertTrue(reply.startswith('250 line 000 '), text)
        self.assertTrue(reply.endswith('...'), text)
        self.assertLessEqual(len(reply), 511, text)

    def test_longest_line_read(self):
        """a 2046-octet reply line (the bound) to the dot is read"""
        self.play(DOT=b'250 ' + b'z' * (LINE_MAX - 4) + b'\r\n')
        msgid, tok = self.submit()
        self.sent(msgid, tok)

    def test_line_one_over(self):
        """a 2047-octet reply line to the dot: 451 4.5.0, deferred, then delivered"""
        rec = self.defer_then_heal(r'^451 4\.5\.0 .*over 2048 octets while waiting for the reply to the end of data',
                                   DOT=b'250 ' + b'z' * (LINE_MAX - 3) + b'\r\n')
        self.assertIn('relay-error', self.smtpd_log())

    def test_most_lines_read(self):
        """a 100-line reply to MAIL is read"""
        self.play(MAIL=multiline(250, LINES_MAX, 40))
        msgid, tok = self.submit()
        self.sent(msgid, tok)

    def test_one_line_too_many(self):
        """a 101-line reply to MAIL: 451 4.5.0 overlong, deferred, then delivered"""
        self.defer_then_heal(r'^451 4\.5\.0 .*overlong reply from .* while waiting for the reply to MAIL FROM',
                             MAIL=multiline(250, LINES_MAX + 1, 40))

    def test_64k_ehlo_reply(self):
        """a 64 KB EHLO reply: 451 4.5.0 overlong, nothing of the transaction sent"""
        self.play(EHLO=ehlo_multiline(128, 510))
        msgid, tok = self.submit()
        self.deferred(msgid, r'^451 4\.5\.0 .*overlong reply .* while waiting for the reply to EHLO')
        with self.srv.lock:
            self.assertFalse(any(x.startswith('MAIL') for c in self.srv.conns for x in c.cmds))
        self.heals(msgid, tok)

    def test_64k_mail_reply(self):
        """a 64 KB reply to MAIL: deferred, no DATA"""
        self.play(MAIL=multiline(250, 128, 510))
        msgid, tok = self.submit()
        self.deferred(msgid, r'^451 4\.5\.0 .*overlong reply .* while waiting for the reply to MAIL FROM')
        self.assertFalse(self.srv.delivered(tok))
        self.heals(msgid, tok)

    def test_64k_dot_reply(self):
        """a 64 KB 250 to the dot is no acknowledgement: deferred, not sent"""
        self.play(DOT=multiline(250, 128, 510))
        msgid, tok = self.submit()
        self.deferred(msgid, r'^451 4\.5\.0 .*overlong reply .* while waiting for the reply to the end of data')
        self.heals(msgid, tok)

    def test_64k_line_without_end(self):
        """64 KB with no line ending in reply to MAIL: deferred at 2048 octets"""
        self.defer_then_heal(r'^451 4\.5\.0 .*over 2048 octets while waiting for the reply to MAIL FROM',
                             MAIL=b'250 ' + b'w' * 65536)

    def endless(self, step, chunk, reason):
        """The server streams chunk without end at step, on every attempt;
        smtpd's VmRSS is sampled while it does."""
        self.play(**{step: lambda c: c.endless(chunk)})
        pid = self.gw.procs['smtpd'].pid
        before = vm_rss_kb(pid)
        msgid, tok = self.submit()
        peak = before
        end = time.monotonic() + 3
        while time.monotonic() < end:
            peak = max(peak, vm_rss_kb(pid))
            time.sleep(0.05)
        rec = self.deferred(msgid, reason)
        with self.srv.lock:
            conns = list(self.srv.conns)
            written = sum(c.written for c in conns)
        log('  endless %s: %d connections, %d KB written, VmRSS %d -> %d KB'
            % (step, len(conns), written // 1024, before, peak))
        self.assertTrue(all(c.client_closed for c in conns[:-1]),
                        'the gateway kept reading an endless reply')
        self.assertLess(peak - before, 8 * 1024, 'VmRSS grew by %d KB' % (peak - before))
        self.heals(msgid, tok)

    def test_endless_ehlo_reply(self):
        """an endless 250- EHLO reply: cut, 451 4.5.0, VmRSS flat"""
        self.endless('EHLO', b'250-' + b'e' * 500 + b'\r\n',
                     r'^451 4\.5\.0 .*overlong reply .* while waiting for the reply to EHLO')

    def test_endless_dot_reply(self):
        """an endless 250- reply to the dot: not sent, 451 4.5.0, VmRSS flat"""
        self.endless('DOT', b'250-' + b'd' * 500 + b'\r\n',
                     r'^451 4\.5\.0 .*overlong reply .* while waiting for the reply to the end of data')

    def test_endless_line(self):
        """an endless reply line to MAIL (no line ending ever): cut at 2048, VmRSS flat"""
        self.endless('MAIL', b'm' * 4096,
                     r'^451 4\.5\.0 .*over 2048 octets while waiting for the reply to MAIL FROM')


class Cut(HostileCase):
    """Replies cut mid-line, or lines that are no reply."""

    def test_partial_dot_reply_then_close(self):
        """'250 O' to the dot and close: not sent, the connection loss says so"""
        def act(c):
            c.send(b'250 O')
            c.close()
        self.defer_then_heal(r'^4\d\d 4\.\d\.\d .*closed the connection while waiting for the reply to the end of data',
                             DOT=act)

    def test_partial_mail_reply_then_stall(self):
        """'25' to MAIL then nothing: timed out, deferred"""
        def act(c):
            c.send(b'25')
            c.stall()
        self.defer_then_heal(r'^451 4\.4\.2 .*while waiting for the reply to MAIL FROM', MAIL=act)

    def test_continuation_then_close(self):
        """'250-first' to the dot and close: not sent"""
        def act(c):
            c.send(b'250-first line\r\n')
            c.close()
        self.defer_then_heal(r'closed the connection while waiting for the reply to the end of data',
                             DOT=act)

    def test_bare_lf_splits_the_code(self):
        """'2<LF>50 ok' to the dot: a bare LF ends a line (as in Postfix), so '2' is malformed"""
        self.defer_then_heal(r'^451 4\.5\.0 .*\(malformed reply from .* while waiting for the reply to the end of data',
                             DOT=b'2\n50 2.0.0 ok\r\n')

    def test_bare_lf_garbage_after_greeting(self):
        """'220 hi<LF>junk' greeting: the junk is read as the EHLO reply, malformed"""
        self.defer_then_heal(r'^451 4\.5\.0 .*\(malformed reply from .* while waiting for the reply to EHLO',
                             greeting=b'220 hostile.test\njunk\r\n')

    def test_nul_in_code(self):
        """'25<NUL>0 ok' to the dot: malformed, not sent"""
        self.defer_then_heal(r'^451 4\.5\.0 .*\(malformed reply from .* while waiting for the reply to the end of data',
                             DOT=b'25\x000 2.0.0 ok\r\n')

    def test_nul_in_text_sanitised(self):
        """'250 ok<NUL>x<ESC>' to the dot: a 250, its text stored with '?' for the control octets"""
        self.play(DOT=b'250 2.0.0 ok\x00x\x1b[31m\r\n')
        msgid, tok = self.submit()
        rec, text = self.sent(msgid, tok)
        self.assertEqual(rec['rcpt'][0][2], '250 2.0.0 ok?x?[31m', text)
        self.assertNotIn('\x1b', self.smtpd_log())
        self.assertNotIn('\x00', text)

    def test_reply_out_of_turn(self):
        """a reply pushed together with 354, while the body is to go out: deferred, not sent"""
        self.defer_then_heal(r'^451 4\.5\.0 .*spoke out of turn while sending the message',
                             DATA=b'354 go ahead\r\n250 2.0.0 already got it\r\n')


class BadCodes(HostileCase):
    """Codes outside 2xx..5xx or not three digits: 451 4.5.0, deferred."""

    def check(self, step, reply):
        return self.defer_then_heal(r'^451 4\.5\.0 .*\(malformed reply from ', **{step: reply})

    def test_2x0(self):
        """'2x0 ok' to MAIL"""
        self.check('MAIL', b'2x0 ok\r\n')

    def test_two_digits(self):
        """'99 hello' to the dot: not sent"""
        self.check('DOT', b'99 hello\r\n')

    def test_600(self):
        """'600 ok' to RCPT"""
        self.check('RCPT', b'600 ok\r\n')

    def test_199(self):
        """'199 ok' as the greeting"""
        self.check('greeting', b'199 ok\r\n')

    def test_code_changes_between_lines(self):
        """'250-a' then '550 b' to the dot: not sent, not failed"""
        self.check('DOT', b'250-a\r\n550 5.0.0 b\r\n')

    def test_bad_separator(self):
        """'250*ok' to EHLO"""
        self.check('EHLO', b'250*ok\r\n')


class Stalls(HostileCase):
    """Servers that stop talking: command_timeout ends the attempt, deferred."""

    def stall_after_dot(self, wait):
        """No reply to the dot: 451 4.4.2 timed out, not sent; the gateway waited about
        wait seconds for the reply."""
        self.play(DOT=lambda c: c.stall())
        msgid, tok = self.submit()
        rec = self.deferred(msgid, r'^451 4\.4\.2 Connection timed out .*while waiting for the reply to the end of data',
                            timeout=wait + 15)
        conns = self.srv.delivered(tok)
        self.assertTrue(conns, 'the server never read the body')
        waited = conns[0].closed_at - conns[0].dot_at
        log('  waited %.1f s for the reply to the dot' % waited)
        self.assertGreaterEqual(waited, wait - 0.5)
        self.assertLess(waited, wait + 5)
        self.assertTrue(re.search(r'relay-error id=%s .*state=dot' % msgid, self.smtpd_log()))
        self.heals(msgid, tok)

    def test_stall_after_data(self):
        """354, the whole message read, no reply to the dot: 451 4.4.2 after data_done_timeout
        (5 s), not after command_timeout (2 s)"""
        self.stall_after_dot(DATA_DONE_TIMEOUT)

    def test_stall_after_data_short_data_done_timeout(self):
        """data_done_timeout = 2 with command_timeout = 30: the wait for the dot's reply
        ends after 2 s"""
        self.gw.stop('smtpd')
        self.gw.cfg.update(command_timeout=30, data_done_timeout=2)
        self.gw.write_config()
        self.gw.start_smtpd()
        self.stall_after_dot(2)

    def test_stall_before_greeting(self):
        """connected, never greeted: 451 4.4.2 timed out, nothing sent"""
        self.play(greeting=lambda c: c.stall())
        msgid, tok = self.submit()
        self.deferred(msgid, r'^451 4\.4\.2 Connection timed out .*while waiting for the greeting')
        with self.srv.lock:
            self.assertEqual([c.cmds for c in self.srv.conns if c.cmds], [])
        self.heals(msgid, tok)

    def trickler(self, reply):
        def act(c):
            for b in reply:
                c.send(bytes([b]))
                time.sleep(0.5)
            c.stall()
        return act

    def test_trickle_mail_reply(self):
        """a reply to MAIL one octet every half second: command_timeout bounds the reply, 451 4.4.2"""
        self.defer_then_heal(r'^451 4\.4\.2 Connection timed out .*while waiting for the reply to MAIL FROM',
                             MAIL=self.trickler(b'250 ' + b't' * 2000 + b'\r\n'))

    def test_trickle_dot_reply(self):
        """a multi-line reply to the dot, a line every half second: not sent, 451 4.4.2"""
        def act(c):
            for i in range(LINES_MAX - 1):
                c.send(b'250-still reading %d\r\n' % i)
                time.sleep(0.5)
            c.stall()
        self.defer_then_heal(r'^451 4\.4\.2 Connection timed out .*while waiting for the reply to the end of data',
                             DOT=act)

    def test_chatter_after_quit(self):
        """after QUIT, a 250 every half second and never a 221: the gateway still hangs up"""
        def chatter(c):
            end = time.monotonic() + STALL_GUARD
            while time.monotonic() < end:
                c.send(b'250 2.0.0 still here\r\n')
                time.sleep(0.5)
        self.play(QUIT=chatter)
        msgid, tok = self.submit()
        self.sent(msgid, tok)
        conn = self.srv.delivered(tok)[0]
        wait_until(lambda: conn.client_closed, 15, 'the gateway to close after QUIT')


    def test_trickle_after_quit(self):
        """after QUIT, one octet every half second of a reply that never ends: the gateway hangs up"""
        def trickle(c):
            end = time.monotonic() + STALL_GUARD
            while time.monotonic() < end:
                c.send(b'2')
                time.sleep(0.5)
        self.play(QUIT=trickle)
        msgid, tok = self.submit()
        self.sent(msgid, tok)
        conn = self.srv.delivered(tok)[0]
        wait_until(lambda: conn.client_closed, 15, 'the gateway to close after QUIT')


class Refusals(HostileCase):
    """Answers that refuse: in turn or ahead of the client."""

    def test_554_to_pipelined_mail(self):
        """554 to MAIL while RCPT and DATA are pipelined: failed with the 554, no data sent"""
        self.play(MAIL=b'554 5.7.1 go away\r\n', RCPT=b'503 5.5.1 no MAIL\r\n',
                  DATA=b'554 5.5.1 no valid recipients\r\n')
        msgid, tok = self.submit()
        where, rec, text = self.wait_record(msgid, lambda w, r: w in ('sent', 'failed'), 15,
                                            '%s settled' % msgid)
        self.assertEqual(where, 'failed', text)
        self.assertEqual(rec['rcpt'][0][0], 'failed', text)
        self.assertTrue(rec['rcpt'][0][2].startswith('554 5.7.1 go away'), text)
        with self.srv.lock:	# (the notice to a@example.org comes with MAIL FROM:<>)
            conns = [c for c in self.srv.conns if 'MAIL FROM:<a@example.org>' in ' '.join(c.cmds)]
        self.assertEqual(len(conns), 1)
        self.assertEqual([x[:4] for x in conns[0].cmds[:4]], ['EHLO', 'MAIL', 'RCPT', 'DATA'])
        self.assertIsNone(conns[0].data)

    def test_554_to_mail_then_354_to_data(self):
        """554 to MAIL, yet 354 to the pipelined DATA: failed, no message body goes out"""
        self.play(MAIL=b'554 5.7.1 go away\r\n', RCPT=b'503 5.5.1 no MAIL\r\n')
        msgid, tok = self.submit()
        where, rec, text = self.wait_record(msgid, lambda w, r: w in ('sent', 'failed'), 15,
                                            '%s settled' % msgid)
        self.assertEqual(where, 'failed', text)
        self.assertFalse(self.srv.delivered(tok))
        with self.srv.lock:
            got = [c.data for c in self.srv.conns]
        self.assertFalse(any(d and tok.encode() in d for d in got if d), got)

    def test_5xx_greeting(self):
        """a 554 greeting: deferred (not failed: one host's refusal is no verdict
        on the recipients), no MAIL sent, delivered once the host talks"""
        rec = self.defer_then_heal(r'^451 4\.4\.0 Host refused to talk to us \(.* greeted with '
                                   r'554 5\.7\.1 not talking to you',
                                   greeting=b'554 5.7.1 not talking to you\r\n')
        with self.srv.lock:
            first = self.srv.conns[0]
        self.assertFalse(any(x.startswith('MAIL') for x in first.cmds), first.cmds)

    def test_4xx_greeting(self):
        """a 421 greeting: deferred with it, then delivered"""
        self.defer_then_heal(r'^421 4\.3\.2 busy', greeting=b'421 4.3.2 busy\r\n')


class AuthRefused(HostileCase):
    """AUTH refused with a temporary code: deferred, never failed (issue 6)."""

    USER, PASSWORD = 'gw@example.org', 'secret pw'

    def setUp(self):
        self.srv = Hostile()
        self.addCleanup(self.srv.stop)
        self.gw = harness.Instance('hostile', smarthost='127.0.0.1:%d' % self.srv.port,
                                   retry_min=1, retry_max=1, scan_interval=300,
                                   connect_timeout=COMMAND_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
                                   tls='none', auth_plaintext=True)
        self.addCleanup(self.gw.cleanup)
        path = os.path.join(self.gw.dir, 'credentials')
        with open(path, 'w') as f:
            f.write('%s %s:%s\n' % (self.gw.cfg['smarthost'], self.USER, self.PASSWORD))
        os.chmod(path, 0o600)
        if harness.IS_ROOT:
            pw = pwd.getpwnam(harness.USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.gw.cfg['credentials'] = path
        self.gw.start_smtpd()

    def refused(self, reply, want):
        self.play(EHLO=b'250-hostile.test\r\n250-AUTH PLAIN\r\n250 SIZE 20000000\r\n', AUTH=reply)
        msgid, tok = self.submit()
        rec = self.deferred(msgid, want)
        self.assertRegex(rec['rcpt'][0][2], want)
        with self.srv.lock:
            first = self.srv.conns[0]
        self.assertTrue(any(x.startswith('AUTH PLAIN') for x in first.cmds), first.cmds)
        self.assertFalse(any(x.startswith('MAIL') for x in first.cmds), first.cmds)
        self.assertRegex(self.smtpd_log(), r'level=error event=relay-auth-failed id=%s ' % re.escape(msgid))
        # The server lets it in: the next attempt authenticates and delivers.
        self.play(EHLO=b'250-hostile.test\r\n250-AUTH PLAIN\r\n250 SIZE 20000000\r\n')
        where, rec, text = self.wait_record(msgid, lambda w, r: w in ('sent', 'failed'), 15,
                                            '%s delivered once AUTH succeeds' % msgid)
        self.assertEqual(where, 'sent', text)
        self.assertEqual(rec.get('last-auth'), 'PLAIN user=%s' % self.USER)
        self.assertTrue(self.srv.delivered(tok))

    def test_auth_454_defers(self):
        """454 4.7.0 to AUTH: deferred with the reply, then delivered"""
        self.refused(b'454 4.7.0 Temporary authentication failure\r\n',
                     r'^454 4\.7\.0 authentication failed: 127\.0\.0\.1:\d+ said: 454 4\.7\.0 '
                     r'Temporary authentication failure')

    def test_auth_432_defers(self):
        """432 4.7.12 (a password transition is needed) to AUTH: deferred with the reply, then delivered"""
        self.refused(b'432 4.7.12 A password transition is needed\r\n',
                     r'^454 4\.7\.0 authentication failed: 127\.0\.0\.1:\d+ said: 432 4\.7\.12 '
                     r'A password transition is needed')


if __name__ == '__main__':
    harness.main()
