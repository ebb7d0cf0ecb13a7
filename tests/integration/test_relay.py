#!/usr/bin/python3
"""test_relay - the relay inside spoolgate-smtpd, fed through the mount.

The whole loop of ./run (outbox/ -> relay -> own SMTP listener -> inbox/),
delivery to real sinks (aiosmtpd in this process; Postfix's smtp-sink):
CRLF line endings on the wire, dots intact after unstuffing, no Bcc, the
envelope from the headers; a 4xx keeps the message queued and it is
delivered on retry; a 5xx moves it to failed/ with the remote reply in
failed/<id>.status; nothing listening keeps it queued with attempts
growing; inotify: delivered within 2 s with scan_interval = 300.
What goes out is well formed: outbox files carry Received/Date/Message-ID
and no Return-Path; a@b.c and A@B.C are two recipients; a raw-socket sink
with and without 8BITMIME shows 8-bit bodies and 1505-octet lines arriving
converted (all 7-bit, decoding to the bytes written) or as they are with
BODY=8BITMIME, and an 8-bit header failing with 554 5.6.3.
Skipped (77) where FUSE is not available.
"""

import asyncio
import email
import email.policy
import email.utils
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import socketserver
import subprocess
import tempfile
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, parse_record, split_stored, wait_until

NOTICE_LIMIT = 2.0		# seconds from close() to the sink: inotify, not the scan


def setUpModule():
    why = harness.fuse_available()
    if why:
        raise unittest.SkipTest(why)


def token():
    return uuid.uuid4().hex[:12]


def drop(gw, data, name=None):
    """Write data into outbox/ (create, write, close must all succeed).
    Returns (id of the queued message, monotonic time of the close).

    The id comes from the fs daemon's log line for this name, written before
    close() returns: the record itself may be gone already (delivered with
    keep_sent = no) by the time we look."""
    name = name or ('m-%s.eml' % token())
    path = os.path.join(gw.mnt, 'outbox', name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)		# raises if the submission failed
    t = time.monotonic()
    ids = re.findall(r'event=outbox-submitted id=(\S+) name=%s ' % re.escape(name), gw.read_log('fs'))
    if len(ids) != 1:
        raise AssertionError('expected one outbox-submitted line for %s, got %s' % (name, ids))
    return ids[0], t


def record(gw, msgid):
    where, text = gw.find_record(msgid)
    return where, (parse_record(text) if text else None), text


def wait_record(gw, msgid, pred, timeout, what):
    """Wait until pred(where, rec) holds for the record of msgid."""
    def check():
        where, rec, text = record(gw, msgid)
        return (where, rec, text) if rec is not None and pred(where, rec) else None
    try:
        return wait_until(check, timeout, what, interval=0.05)
    except AssertionError:
        where, rec, text = record(gw, msgid)
        raise AssertionError('%s; record is in %s:\n%s' % (what, where, text))


# ---------------------------------------------------------------- the sink

class Sink:
    """An aiosmtpd server in this process that keeps every DATA it gets.
    Policy: rcpt_rules maps an address to a reply for its RCPT; data_rule(msg)
    may return a reply for the DATA (e.g. a 451) instead of accepting."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.lock = threading.Lock()
        self.received = []		# accepted transactions
        self.attempts = []		# every DATA, accepted or not
        self.rcpt_rules = {}
        self.mail_rules = {}		# sender -> reply for its MAIL
        self.data_rule = None
        self.data_delay = None		# fn(msg) -> seconds to wait before replying
        self.port = harness.free_port()
        self.controller = Controller(self, hostname='127.0.0.1', port=self.port,
                                     server_hostname='sink.test')
        self.controller.start()

    def stop(self):
        self.controller.stop()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            rule = self.mail_rules.get(address.lower())
        if rule:
            return rule
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return '250 2.1.0 sender ok'

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            rule = self.rcpt_rules.get(address.lower())
        if rule:
            return rule
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 recipient ok'

    async def handle_DATA(self, server, session, envelope):
        msg = {'from': envelope.mail_from, 'rcpt': list(envelope.rcpt_tos),
               'mail_options': list(envelope.mail_options),
               'data': envelope.original_content, 't': time.monotonic()}
        with self.lock:
            self.attempts.append(msg)
            rule = self.data_rule
            delay = self.data_delay(msg) if self.data_delay else 0
        if delay:
            await asyncio.sleep(delay)
        status = rule(msg) if rule else None
        if status:
            return status
        with self.lock:
            self.received.append(msg)
        return '250 2.0.0 sink got it'

    def find(self, needle, attempts=False):
        with self.lock:
            return [m for m in (self.attempts if attempts else self.received)
                    if needle.encode() in m['data']]


def start_sink_for(cls):
    """cls.sink: a running Sink, stopped at the class's cleanup; the class is
    skipped when aiosmtpd is not there."""
    try:
        cls.sink = Sink()
    except ImportError as e:
        raise unittest.SkipTest('aiosmtpd is not available: %s' % e)
    cls.addClassCleanup(cls.sink.stop)


def sink_message(tok, to='bob@example.net', cc='carol@example.net', bcc='eve@example.net',
                 body=None):
    hdr = ('From: Alice <alice@example.org>\nTo: %s\n' % to
           + ('Cc: %s\n' % cc if cc else '')
           + ('Bcc: %s\n' % bcc if bcc else '')
           + 'Subject: relay %s\nDate: Sat, 29 Nov 2025 10:00:00 +0000\n'
             'Message-ID: <%s@test>\n' % (tok, tok))
    return hdr, (body if body is not None else 'plain body %s\n' % tok)


class ToSink(unittest.TestCase):
    """smarthost = an aiosmtpd sink; scan_interval = 300 so only inotify
    can make a delivery fast."""

    @classmethod
    def setUpClass(cls):
        start_sink_for(cls)
        cls.gw = harness.Instance('relay-sink', smarthost='127.0.0.1:%d' % cls.sink.port,
                                  scan_interval=300, retry_min=1, retry_max=2,
                                  command_timeout=10)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def test_delivery_format_and_latency(self):
        """bare-LF, dot-leading lines arrive as CRLF, unstuffed dots intact, no Bcc, within 2 s"""
        tok = token()
        body = ('.leading dot\n..two dots\n.\nmiddle line\n...\n'
                'last line without newline %s' % tok)
        hdr, body = sink_message(tok, body=body)
        msgid, t_close = drop(self.gw, (hdr + '\n' + body).encode())
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        latency = got[0]['t'] - t_close
        log('  %s at the sink %.2fs after close (scan_interval=300)' % (msgid, latency))
        self.assertEqual(len(got), 1, 'delivered %d times' % len(got))
        m = got[0]
        data = m['data']
        self.assertEqual(m['from'], 'alice@example.org')
        self.assertEqual(sorted(a.lower() for a in m['rcpt']),
                         ['bob@example.net', 'carol@example.net', 'eve@example.net'])
        # Every line ending on the wire was CRLF (aiosmtpd keeps them as sent).
        self.assertNotIn(b'\n', data.replace(b'\r\n', b''), 'bare LF on the wire')
        self.assertTrue(data.endswith(b'\r\n'), 'message does not end with CRLF')
        self.assertNotIn(b'bcc:', data.lower(), 'Bcc header was sent')
        self.assertNotIn(b'eve@example.net', data)
        head, sep, sent_body = data.partition(b'\r\n\r\n')
        self.assertEqual(sep, b'\r\n\r\n')
        for line in hdr.splitlines():
            if not line.startswith('Bcc:'):
                self.assertIn(line.encode() + b'\r\n', head + b'\r\n')
        expected = body.replace('\n', '\r\n').encode() + b'\r\n'
        self.assertEqual(sent_body, expected)
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'sent', 10,
                                       'record of %s in sent/' % msgid)
        self.assertEqual(sorted(s for s, _, _ in rec['rcpt']), ['sent'] * 3, text)
        self.assertTrue(all('250' in reply for _, _, reply in rec['rcpt']), text)
        self.assertIn(msgid + '.status', os.listdir(os.path.join(self.gw.mnt, 'sent')))
        self.assertLessEqual(latency, NOTICE_LIMIT,
                             'queued message noticed after %.2fs: inotify does not work'
                             % latency)

    def test_sent_record_names_host_and_reply(self):
        """sent/<id>.status names the host of the attempt and its 250 to the end of data"""
        tok = token()
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'sent', 10,
                                       'record of %s in sent/' % msgid)
        self.assertEqual(rec.get('last-host'), '127.0.0.1:%d' % self.sink.port, text)
        self.assertTrue(rec.get('last-reply', '').startswith('250'), text)
        self.assertEqual(rec.get('attempts'), '1', text)

    def test_outbox_trace_headers(self):
        """an outbox file gets Received (uid, quoted name), Date and Message-ID; its Return-Path is gone"""
        tok = token()
        name = 'odd (name) %s \x01\x9b\xff.eml' % tok
        data = ('Return-Path: <forged@example.org>\nFrom: alice@example.org\nTo: bob@example.net\n'
                'Subject: trace %s\nreturn-path:\n <folded@example.org>\n\n'
                'Return-Path: <this body line stays>\n' % tok)
        path = os.path.join(self.gw.mnt.encode(), b'outbox', name.encode('latin-1'))
        with open(path, 'wb') as f:
            f.write(data.encode())
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % tok)
        wire = got[0]['data']
        m = re.search(rb'\sid (\S+) \(uid', wire)
        self.assertIsNotNone(m, 'no Received: header of the submission in %r' % wire[:400])
        msgid = m.group(1).decode()
        head, _, body = wire.partition(b'\r\n\r\n')
        self.assertNotIn(b'return-path', head.lower(), 'a Return-Path: header was relayed')
        self.assertEqual(body, b'Return-Path: <this body line stays>\r\n')
        msg = email.message_from_bytes(wire, policy=email.policy.compat32)
        received = ' '.join(msg['Received'].split())
        quoted = 'odd%20%28name%29%20' + tok + '%20%01%9B%FF.eml'
        self.assertRegex(received, r'^by \S+ \(spoolgate, from outbox\) id %s \(uid %d, user %s, file %s\); '
                         % (re.escape(msgid), os.getuid(), pwd.getpwuid(os.getuid()).pw_name, re.escape(quoted)))
        self.assertTrue(all(0x20 <= b < 0x7f or b in (9, 10, 13) for b in head), head)
        self.assertEqual(msg['Message-ID'], '<%s@%s>' % (msgid, msg['Received'].split()[1]))
        date = email.utils.parsedate_to_datetime(msg['Date'])
        self.assertIsNotNone(date.tzinfo, msg['Date'])
        self.assertLess(abs(time.time() - date.timestamp()), 300)
        self.assertEqual(msg['Date'], received.rsplit('; ', 1)[1])

    def test_local_part_case_kept(self):
        """a@b.c and A@B.C are two mailboxes, from outbox/ and over SMTP; a@b.c and a@B.C are one"""
        tok = token()
        hdr = ('From: alice@example.org\nTo: a@b.example, A@B.EXAMPLE\nCc: a@B.example\n'
               'Subject: case %s\n\nbody\n' % tok)
        msgid, _ = drop(self.gw, hdr.encode())
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        self.assertEqual(sorted(got[0]['rcpt']), ['A@B.EXAMPLE', 'a@b.example'])
        tok = token()
        with smtplib.SMTP(*self.gw.smtp_addr) as c:
            c.sendmail('alice@example.org', ['a@b.example', 'A@B.EXAMPLE', 'a@B.example'],
                       b'Subject: case %s\r\n\r\nbody\r\n' % tok.encode())
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get the SMTP copy')
        self.assertEqual(sorted(got[0]['rcpt']), ['A@B.EXAMPLE', 'a@b.example'])

    def test_no_bare_cr_on_the_wire(self):
        """a bare CR in the source is not sent as a bare CR (RFC 5321 2.3.8 MUST NOT)"""
        tok = token()
        hdr, body = sink_message(tok, cc=None, bcc=None,
                                 body='before\rafter %s\r\nnext\n' % tok)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        data = got[0]['data']
        self.assertNotIn(b'\r', data.replace(b'\r\n', b''), 'bare CR on the wire: %r' % data)
        self.assertNotIn(b'\n', data.replace(b'\r\n', b''), 'bare LF on the wire: %r' % data)
        self.assertIn(b'before', data)
        self.assertIn(b'after %s' % tok.encode(), data)
        self.assertTrue(data.endswith(b'\r\nnext\r\n'), data)

    def test_4xx_then_retry(self):
        """451 at DATA: stays queued with attempts >= 1, delivered on retry (retry_min=1)"""
        tok = token()
        accept = threading.Event()

        def rule(msg):
            if tok.encode() in msg['data'] and not accept.is_set():
                return '451 4.3.0 try later'
            return None
        self.sink.data_rule = rule
        self.addCleanup(setattr, self.sink, 'data_rule', None)
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(
            self.gw, msgid,
            lambda w, r: w == 'queue' and int(r.get('attempts', '0')) >= 1,
            10, 'a deferred record of %s' % msgid)
        self.assertIn('451', rec.get('last-reply', ''), text)
        self.assertEqual(rec['rcpt'][0][0], 'pending', text)
        self.assertEqual(self.sink.find(tok), [], 'accepted although the sink said 451')
        self.assertGreaterEqual(len(self.sink.find(tok, attempts=True)), 1)
        log('  deferred after 451: attempts=%s next-attempt=%s'
            % (rec.get('attempts'), rec.get('next-attempt')))
        accept.set()
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'sent', 20,
                                       'record of %s in sent/ after the retry' % msgid)
        self.assertGreaterEqual(int(rec.get('attempts', '0')), 2, text)
        self.assertEqual(len(self.sink.find(tok)), 1)

    def test_4xx_one_rcpt_only_pending_resent(self):
        """452 to one RCPT: the other is sent; the retry sends only the pending one"""
        tok = token()
        later = 'later-%s@example.net' % tok
        self.sink.rcpt_rules[later] = '452 4.2.2 mailbox full, try later'
        hdr, body = sink_message(tok, to='bob@example.net', cc=later, bcc=None)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(
            self.gw, msgid, lambda w, r: w == 'queue' and int(r.get('attempts', '0')) >= 1,
            10, 'a deferred record of %s' % msgid)
        states = {a: st for st, a, _ in rec['rcpt']}
        self.assertEqual(states, {'bob@example.net': 'sent', later: 'pending'}, text)
        del self.sink.rcpt_rules[later]
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'sent', 20,
                                       'record of %s in sent/' % msgid)
        got = self.sink.find(tok)
        self.assertEqual(len(got), 2, 'expected two transactions, got %d' % len(got))
        self.assertEqual([a.lower() for a in got[0]['rcpt']], ['bob@example.net'])
        self.assertEqual([a.lower() for a in got[1]['rcpt']], [later],
                         'the retry must send only the pending recipient')

    def test_5xx_to_mail(self):
        """550 to MAIL FROM: every recipient fails, record in failed/ with the reply"""
        tok = token()
        sender = 'banned-%s@example.org' % tok
        self.sink.mail_rules[sender] = '550 5.7.1 sender banned'
        msg = ('From: %s\nTo: bob@example.net, carol@example.net\nSubject: relay %s\n\nx\n'
               % (sender, tok)).encode()
        msgid, _ = drop(self.gw, msg)
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'failed', 10,
                                       'record of %s in failed/' % msgid)
        self.assertEqual(sorted(st for st, _, _ in rec['rcpt']), ['failed', 'failed'], text)
        self.assertIn('550 5.7.1 sender banned', text)

    def test_5xx_failed(self):
        """550 5.1.1 to RCPT: moved to failed/, failed/<id>.status holds the reply"""
        tok = token()
        nobody = 'nobody-%s@example.net' % tok
        self.sink.rcpt_rules[nobody] = '550 5.1.1 no such user'
        hdr, body = sink_message(tok, to=nobody, cc=None, bcc=None)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'failed', 10,
                                       'record of %s in failed/' % msgid)
        with open(os.path.join(self.gw.mnt, 'failed', msgid + '.status')) as f:
            status = f.read()
        self.assertIn('550 5.1.1 no such user', status)
        rec = parse_record(status)
        self.assertEqual(rec['rcpt'][0][:2], ('failed', nobody), status)
        self.assertIn('127.0.0.1:%d' % self.sink.port, rec.get('last-host', ''), status)
        # rcpt-at: which host gave that reply, and when
        self.assertRegex(status, r'\nrcpt-at: \d+ 127\.0\.0\.1:%d\n' % self.sink.port)
        with open(os.path.join(self.gw.mnt, 'failed', msgid), 'rb') as f:
            self.assertIn(tok.encode(), f.read())
        # Only the sender's notice (from <>, test_bounce.py) went out, not the message.
        self.assertEqual([m for m in self.sink.find(tok) if m['from'] != '<>'], [])

    def test_5xx_one_of_two(self):
        """one recipient refused (550), one accepted: failed/ records both outcomes"""
        tok = token()
        nobody = 'nobody-%s@example.net' % tok
        self.sink.rcpt_rules[nobody] = '550 5.1.1 no such user'
        hdr, body = sink_message(tok, to='bob@example.net', cc=nobody, bcc=None)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'failed', 10,
                                       'record of %s in failed/' % msgid)
        states = {a: s for s, a, _ in rec['rcpt']}
        self.assertEqual(states, {'bob@example.net': 'sent', nobody: 'failed'}, text)
        got = [m for m in self.sink.find(tok) if m['from'] != '<>']	# not the sender's notice
        self.assertEqual(len(got), 1)
        self.assertEqual([a.lower() for a in got[0]['rcpt']], ['bob@example.net'])


class RawSink:
    """A small SMTP server on a raw socket whose EHLO keywords the test
    chooses (aiosmtpd always offers 8BITMIME).  It records each MAIL line
    and the DATA exactly as it came off the wire (dot-stuffing undone)."""

    def __init__(self, keywords=('PIPELINING', 'SIZE 20000000')):
        self.keywords = list(keywords)
        self.lock = threading.Lock()
        self.received = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b'220 rawsink.test ESMTP\r\n')
                msg = {'rcpt': []}
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb == b'EHLO':
                        kws = ['rawsink.test'] + sink.keywords
                        for i, kw in enumerate(kws):
                            sep = '-' if i + 1 < len(kws) else ' '
                            self.wfile.write(('250%s%s\r\n' % (sep, kw)).encode())
                    elif verb == b'MAIL':
                        msg = {'mail': line.rstrip(b'\r\n').decode('ascii', 'replace'), 'rcpt': []}
                        self.wfile.write(b'250 2.1.0 ok\r\n')
                    elif verb == b'RCPT':
                        msg['rcpt'].append(line[8:].strip(b'<>\r\n').decode('ascii', 'replace'))
                        self.wfile.write(b'250 2.1.5 ok\r\n')
                    elif verb == b'DATA':
                        self.wfile.write(b'354 go ahead\r\n')
                        lines = []
                        while True:
                            dl = self.rfile.readline(1 << 20)
                            if not dl or dl == b'.\r\n':
                                break
                            lines.append(dl[1:] if dl.startswith(b'.') else dl)
                        msg['data'] = b''.join(lines)
                        with sink.lock:
                            sink.received.append(msg)
                        self.wfile.write(b'250 2.0.0 raw sink got it\r\n')
                    elif verb == b'QUIT':
                        self.wfile.write(b'221 2.0.0 bye\r\n')
                        return
                    else:
                        self.wfile.write(b'250 2.0.0 ok\r\n')

        self.server = harness.serve_tcp(Handler)
        self.port = self.server.server_address[1]

    def stop(self):
        harness.stop_tcp(self.server)

    def find(self, needle):
        with self.lock:
            return [m for m in self.received if needle.encode() in m['data']]


def assert_7bit_wire(tc, data):
    """Nothing a 7-bit server may cut or corrupt: ASCII only, lines of at most 998 octets."""
    tc.assertTrue(all(b < 0x80 and b != 0 for b in data), 'an 8-bit or NUL octet was sent')
    longest = max(len(line) for line in data.split(b'\r\n'))
    tc.assertLessEqual(longest, 998, 'a line of %d octets was sent' % longest)


def decoded_body(data):
    """The body of a single-part message as a reader decodes it, LF line endings."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    return msg, msg.get_payload(decode=True).replace(b'\r\n', b'\n')


EIGHTBIT_BODY = ('Gr\u00fc\u00dfe aus K\u00f6ln, \u65e5\u672c\n'.encode('utf-8')
                 + b'latin-1 \xe9t\xe9 and raw \x80\xff octets\n.leading dot\n')
LONG_LINE = b'long:' + b'0123456789' * 150 + b'\n'		# 1505 octets


class SevenBitPeer(unittest.TestCase):
    """The smarthost offers no 8BITMIME: 8-bit content and long lines
    arrive converted (quoted-printable), all 7-bit, decoding to the bytes
    that were written; what cannot be converted fails with 554 5.6.3."""

    @classmethod
    def setUpClass(cls):
        cls.sink = RawSink()
        cls.addClassCleanup(cls.sink.stop)
        cls.gw = harness.Instance('relay-7bit', smarthost='127.0.0.1:%d' % cls.sink.port,
                                  hostname='gw.example', retry_min=1, retry_max=2,
                                  command_timeout=10)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def converted(self, tok, body, msgid):
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        self.assertEqual(len(got), 1)
        m = got[0]
        assert_7bit_wire(self, m['data'])
        self.assertNotIn('BODY=8BITMIME', m['mail'].upper(), 'BODY=8BITMIME to a 7-bit server')
        msg, decoded = decoded_body(m['data'])
        self.assertEqual(msg['MIME-Version'], '1.0')
        self.assertEqual(msg['Content-Transfer-Encoding'], 'quoted-printable')
        self.assertEqual(decoded, body)
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=relay-converted id=%s .*to=7bit' % re.escape(msgid))
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'sent', 10,
                                       'record of %s in sent/' % msgid)
        self.assertRegex(rec.get('conversion', ''), r'^7bit for 127\.0\.0\.1:%d \(\S+\), attempt 1$'
                         % self.sink.port, text)
        return m

    def test_8bit_body_from_outbox(self):
        """8-bit body to a server without 8BITMIME: quoted-printable, decodes to the original bytes"""
        tok = token()
        hdr, _ = sink_message(tok, cc=None, bcc=None)
        body = b'body %s\n' % tok.encode() + EIGHTBIT_BODY
        msgid, _ = drop(self.gw, hdr.encode() + b'\n' + body)
        self.converted(tok, body, msgid)
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=relay-converted id=%s .*reason=8bit-without-8bitmime' % re.escape(msgid))

    def test_long_line_from_outbox(self):
        """a 1505-octet line is never sent as such: quoted-printable soft breaks, same bytes decoded"""
        tok = token()
        hdr, _ = sink_message(tok, cc=None, bcc=None)
        body = b'body %s\n' % tok.encode() + LONG_LINE + b'end\n'
        msgid, _ = drop(self.gw, hdr.encode() + b'\n' + body)
        self.converted(tok, body, msgid)
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=relay-converted id=%s .*reason=line-over-998' % re.escape(msgid))

    def test_8bitmime_from_smtp(self):
        """a message received with BODY=8BITMIME is relayed to the 7-bit server converted"""
        tok = token()
        body = b'body %s\n' % tok.encode() + EIGHTBIT_BODY + LONG_LINE
        data = (b'From: a@example.org\r\nTo: far@example.net\r\nSubject: smtp %s\r\n\r\n'
                % tok.encode()) + body.replace(b'\n', b'\r\n')
        with smtplib.SMTP(*self.gw.smtp_addr) as c:
            c.ehlo()
            self.assertEqual(c.mail('a@example.org', ['BODY=8BITMIME'])[0], 250)
            self.assertEqual(c.rcpt('far@example.net')[0], 250)
            code, text = c.data(data)
            self.assertEqual(code, 250, text)
        m = self.converted(tok, body, harness.queued_id(text))
        self.assertEqual(m['rcpt'], ['far@example.net'])

    def test_8bit_header_refused(self):
        """8-bit octets in a header cannot be transfer-encoded: failed/ with 554 5.6.3, nothing sent"""
        tok = token()
        data = ('From: a@example.org\nTo: b@example.net\nSubject: caf\u00e9 %s\n\nb\u00f6dy\n'
                % tok).encode('utf-8')
        msgid, _ = drop(self.gw, data)
        where, rec, text = wait_record(self.gw, msgid, lambda w, r: w == 'failed', 10,
                                       'record of %s in failed/' % msgid)
        self.assertIn('554 5.6.3', text)
        self.assertIn('header', text)
        self.assertEqual(self.sink.find(tok), [])


class EightBitPeer(unittest.TestCase):
    """The smarthost offers 8BITMIME: 8-bit content goes as it is with
    BODY=8BITMIME; a 7-bit message carries no BODY=; a line over 998
    octets is converted all the same."""

    @classmethod
    def setUpClass(cls):
        cls.sink = RawSink(keywords=('PIPELINING', '8BITMIME', 'SIZE 20000000'))
        cls.addClassCleanup(cls.sink.stop)
        cls.gw = harness.Instance('relay-8bit', smarthost='127.0.0.1:%d' % cls.sink.port,
                                  hostname='gw.example', retry_min=1, retry_max=2,
                                  command_timeout=10)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def test_8bit_sent_as_is(self):
        """8-bit body to an 8BITMIME server: the same bytes, MAIL with BODY=8BITMIME"""
        tok = token()
        hdr, _ = sink_message(tok, cc=None, bcc=None)
        body = b'body %s\n' % tok.encode() + EIGHTBIT_BODY
        msgid, _ = drop(self.gw, hdr.encode() + b'\n' + body)
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        self.assertTrue(got[0]['mail'].endswith(' BODY=8BITMIME'), got[0]['mail'])
        self.assertTrue(got[0]['data'].endswith(b'\r\n\r\n' + body.replace(b'\n', b'\r\n')),
                        got[0]['data'][-300:])
        self.assertNotIn('relay-converted id=%s' % msgid, self.gw.read_log('smtpd'))

    def test_7bit_without_body_param(self):
        """a 7-bit message is not announced as 8BITMIME"""
        tok = token()
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(self.gw, (hdr + '\n' + body).encode())
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        self.assertNotIn('BODY=', got[0]['mail'].upper())

    def test_long_line_converted(self):
        """8BITMIME does not allow lines over 998 octets: converted for this server too"""
        tok = token()
        hdr, _ = sink_message(tok, cc=None, bcc=None)
        body = b'body %s\n' % tok.encode() + LONG_LINE + EIGHTBIT_BODY
        msgid, _ = drop(self.gw, hdr.encode() + b'\n' + body)
        got = wait_until(lambda: self.sink.find(tok), 10, 'the sink to get %s' % msgid)
        assert_7bit_wire(self, got[0]['data'])
        self.assertEqual(decoded_body(got[0]['data'])[1], body)
        self.assertNotIn('BODY=8BITMIME', got[0]['mail'])


class NothingListening(unittest.TestCase):

    def test_stays_queued(self):
        """smarthost refuses connections: stays in queue/, attempts grow, 4xx last reply"""
        gw = harness.Instance('relay-dead', retry_min=1, retry_max=2, scan_interval=300)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        hdr, body = sink_message(token(), cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(
            gw, msgid, lambda w, r: w == 'queue' and int(r.get('attempts', '0')) >= 2,
            15, 'two failed attempts of %s' % msgid)
        self.assertTrue(rec.get('last-reply', '').startswith('4'), text)
        self.assertEqual(rec['rcpt'][0][0], 'pending', text)
        self.assertNotIn(msgid, os.listdir(os.path.join(gw.mnt, 'failed')))
        self.assertNotIn(msgid, os.listdir(os.path.join(gw.mnt, 'sent')))
        log('  after refused connections: attempts=%s last-reply=%r'
            % (rec.get('attempts'), rec.get('last-reply')))


class LongQueue(unittest.TestCase):

    def test_arrival_reads_one_record(self):
        """a queue of deferred messages: each new arrival is attempted without a rescan of queue/"""
        gw = harness.Instance('relay-longq', scan_interval=300)   # retry_min 3600: all stay deferred
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()

        def send(n):
            ids = []
            with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
                for i in range(n):
                    c.sendmail('a@localhost', ['x%d@example.net' % i], 'Subject: %d\r\n\r\nbody\r\n' % i)
                    ids.append(gw.read_log('smtpd').rsplit('event=accepted id=', 1)[1].split()[0])
            return ids

        def all_attempted(ids):
            return lambda: all((lambda r: r[0] == 'queue' and 'attempts: 1' in (r[1] or ''))(
                gw.find_record(i)) for i in ids)

        first = send(30)
        wait_until(all_attempted(first), 30, 'a first attempt of the 30 messages')
        scans = gw.read_log('smtpd').count('event=relay-scan ')
        later = send(5)
        wait_until(all_attempted(later), 30, 'a first attempt of the 5 new messages')
        self.assertEqual(gw.read_log('smtpd').count('event=relay-scan '), scans,
                         'a new arrival rescanned the whole queue')
        log('  35 deferred in queue/, %d full scans, none for the last 5 arrivals' % scans)


class Lifetime(unittest.TestCase):

    def test_expired(self):
        """max_queue_lifetime=2 with nothing listening: the message ends in failed/ as expired"""
        gw = harness.Instance('relay-expire', retry_min=1, retry_max=1, max_queue_lifetime=2)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        hdr, body = sink_message(token(), cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(gw, msgid, lambda w, r: w == 'failed', 20,
                                       'record of %s in failed/ after expiry' % msgid)
        self.assertEqual(rec['rcpt'][0][0], 'failed', text)
        self.assertIn('expired', text)
        with open(os.path.join(gw.mnt, 'failed', msgid + '.status')) as f:
            self.assertIn('expired', f.read())

    def test_expires_when_lifetime_runs_out(self):
        """retry 60 s, lifetime 3 s, dead smarthost: failed/ at the lifetime, not at the next retry; 554 5.4.7"""
        gw = harness.Instance('relay-expire-on-time', retry_min=60, retry_max=60, max_queue_lifetime=3,
                              scan_interval=300)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        c = harness.RawSMTP(gw.smtp_addr)
        self.addCleanup(c.close)
        c.ehlo()
        harness.assert_reply(self, c.cmd('MAIL FROM:<a@example.org>'), 250)
        harness.assert_reply(self, c.cmd('RCPT TO:<far@example.net>'), 250)
        harness.assert_reply(self, c.cmd('DATA'), 354)
        r = c.cmd('Subject: expire\r\n\r\nbody\r\n.')
        harness.assert_reply(self, r, 250, '2.0.0')
        msgid = harness.queued_id(r.text)
        t0 = time.monotonic()
        where, rec, text = wait_record(gw, msgid, lambda w, r: w == 'failed', 20,
                                       'record of %s in failed/ when its 3 s run out' % msgid)
        log('  failed/ after %.1fs (retry was 60 s)' % (time.monotonic() - t0))
        self.assertEqual(rec['attempts'], '1', 'no attempt after the lifetime: %s' % text)
        state, addr, reply = rec['rcpt'][0]
        self.assertEqual(state, 'failed', text)
        self.assertTrue(reply.startswith('554 5.4.7 Delivery time expired'), text)
        self.assertIn('last reply: 451 4.4.1', reply)
        self.assertTrue(rec['last-reply'].startswith('554 5.4.7'), text)
        # The log line follows the durable move to failed/: wait for it, then check what it says.
        pattern = re.compile(r'event=relay-failed id=%s .*' % re.escape(msgid))
        line = wait_until(lambda: pattern.search(gw.read_log('smtpd')), 10,
                          'the relay-failed log line of %s' % msgid).group(0)
        self.assertRegex(line, r' expired=yes\b', line)


class KeepSentNo(unittest.TestCase):

    def test_keep_sent_no(self):
        """keep_sent = no: a delivered message leaves no record and no data behind"""
        sink = Sink()
        self.addCleanup(sink.stop)
        gw = harness.Instance('relay-nokeep', smarthost='127.0.0.1:%d' % sink.port,
                              keep_sent=False, retry_min=1, retry_max=2)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        tok = token()
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        wait_until(lambda: sink.find(tok), 10, 'the sink to get %s' % msgid)
        wait_until(lambda: gw.find_record(msgid) == (None, None), 10,
                   'the record of %s to be removed' % msgid)
        self.assertEqual(gw.listdir('sent'), [])
        wait_until(lambda: msgid not in gw.listdir('data'), 5, 'data/%s to be removed' % msgid)


class OneRcptSink(Sink):
    """A sink that takes one recipient per transaction and answers every
    further RCPT 452 4.5.3, as a server with a recipient limit does."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if envelope.rcpt_tos:
            return '452 4.5.3 Too many recipients'
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class TooManyRecipients(unittest.TestCase):

    def test_rest_sent_in_the_next_transaction(self):
        """452 4.5.3 to a RCPT after one was accepted: the rest goes at once, not after retry_min"""
        sink = OneRcptSink()
        self.addCleanup(sink.stop)
        # A backoff of an hour: only RFC 5321 4.5.3.1.10 handling delivers the rest in time.
        gw = harness.Instance('relay-overflow', smarthost='127.0.0.1:%d' % sink.port,
                              scan_interval=300, retry_min=3600, retry_max=3600)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        tok = token()
        hdr, body = sink_message(tok, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        where, rec, text = wait_record(gw, msgid, lambda w, r: w == 'sent', 10,
                                       'record of %s in sent/' % msgid)
        self.assertEqual(rec.get('attempts'), '2', text)
        got = sink.find(tok)
        self.assertEqual(sorted(a.lower() for m in got for a in m['rcpt']),
                         ['bob@example.net', 'carol@example.net'])
        self.assertEqual([len(m['rcpt']) for m in got], [1, 1])


class QueuedWhileDown(unittest.TestCase):

    def test_queued_before_smtpd_starts(self):
        """a message dropped while smtpd is down is delivered once smtpd starts"""
        sink = Sink()
        self.addCleanup(sink.stop)
        gw = harness.Instance('relay-down', smarthost='127.0.0.1:%d' % sink.port,
                              retry_min=1, retry_max=2)
        self.addCleanup(gw.cleanup)
        gw.start_fs()
        tok = token()
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        self.assertEqual(record(gw, msgid)[0], 'queue')
        time.sleep(0.5)
        self.assertEqual(sink.find(tok), [])
        gw.start_smtpd()
        wait_until(lambda: sink.find(tok), 10, 'the sink to get %s after smtpd started' % msgid)
        wait_record(gw, msgid, lambda w, r: w == 'sent', 10, 'record of %s in sent/' % msgid)


class RelayCrash(unittest.TestCase):

    def test_kill9_during_delivery(self):
        """kill -9 smtpd while a delivery waits for the sink: after restart the claim is
        given back and the message is delivered"""
        sink = Sink()
        self.addCleanup(sink.stop)
        tok = token()
        first = threading.Event()
        stalled_done = threading.Event()
        t_stall = []

        def delay(msg):
            if tok.encode() in msg['data'] and not first.is_set():
                first.set()
                t_stall.append(time.monotonic())
                msg['stalled'] = True
                return 5
            return 0

        def rule(msg):
            # The stalled attempt answers a dead connection: it must not count.
            if msg.get('stalled'):
                stalled_done.set()
                return '451 4.3.0 connection is gone anyway'
            return None
        sink.data_delay = delay
        sink.data_rule = rule
        gw = harness.Instance('relay-crash', smarthost='127.0.0.1:%d' % sink.port,
                              retry_min=1, retry_max=2, command_timeout=30)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        self.assertTrue(first.wait(10), 'the delivery never reached DATA')
        where, _, text = record(gw, msgid)
        self.assertEqual(where, 'active', 'record during the delivery is in %s' % where)
        gw.kill('smtpd')
        log('  killed -9 during the delivery of %s' % msgid)
        mark = gw._log_size('smtpd')
        gw.start_smtpd()
        where, rec, text = wait_record(gw, msgid, lambda w, r: w == 'sent', 20,
                                       'record of %s in sent/ after restart' % msgid)
        # The stalled handler is cancelled with its connection, or answers it
        # after 5 s; either way it must not have counted.
        stalled_done.wait(max(0.0, t_stall[0] + 5.5 - time.monotonic()))
        self.assertEqual(len(sink.find(tok)), 1)
        self.assertIn('event=recovery', gw.read_log('smtpd', mark))


def plant(gw, rel, text):
    """Write a spool file as the spool's owner would have it (smtpd runs as that user)."""
    path = gw.path(rel)
    with open(path, 'w') as f:
        f.write(text)
    st = os.stat(gw.spool)
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, 0o640)


def dead_pid():
    """The pid of a process that has exited (recovery takes its claims as a dead runner's)."""
    p = subprocess.Popen(['true'])
    p.wait()
    return p.pid


class RecordedThenCrashed(unittest.TestCase):
    """What a crash can leave around a record that reached sent/: recovery and the
    runner finish it without delivering the message again."""

    def deliver_once(self, name, tok, first_reply=None):
        """A message delivered to a new sink; with first_reply its first attempt gets that
        reply and the queue/ record of the deferral is returned too.  smtpd is stopped."""
        sink = Sink()
        self.addCleanup(sink.stop)
        tries = []

        def rule(msg):
            if first_reply and tok.encode() in msg['data'] and not tries:
                tries.append(1)
                return first_reply
            return None
        sink.data_rule = rule
        # A 3 s backoff: the deferral stays in queue/ long enough to be read on a loaded machine.
        gw = harness.Instance(name, smarthost='127.0.0.1:%d' % sink.port, hostname='relaytest',
                              retry_min=3, retry_max=3)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        hdr, body = sink_message(tok, cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        deferred = None
        if first_reply:
            _, _, deferred = wait_record(gw, msgid, lambda w, r: w == 'queue' and r.get('attempts') == '1',
                                         10, 'the deferral of %s in queue/' % msgid)
        _, rec, sent = wait_record(gw, msgid, lambda w, r: w == 'sent', 15, 'record of %s in sent/' % msgid)
        self.assertEqual(len(sink.find(tok)), 1)
        self.assertEqual(gw.stop('smtpd'), 0)
        return sink, gw, msgid, deferred, sent

    def test_queue_copy_of_a_sent_message_is_removed(self):
        """a queue/ record (pending, due) of a message that also has a record in sent/:
        recovery removes it, the message is not sent again, sent/ and data/ stay"""
        tok = token()
        sink, gw, msgid, deferred, sent = self.deliver_once('relay-superseded', tok,
                                                            first_reply='451 4.3.0 not yet')
        self.assertIn('rcpt: pending', deferred)
        plant(gw, 'queue/' + msgid, deferred)
        mark = gw._log_size('smtpd')
        gw.start_smtpd()
        wait_until(lambda: 'event=relay-started ' in gw.read_log('smtpd', mark), 10, 'the relay to start')
        time.sleep(2.5)		# the copy is due: it would have gone out by now
        self.assertEqual(len(sink.find(tok, attempts=True)), 2, 'the message was sent again')
        text = gw.read_log('smtpd', mark)
        self.assertIn('event=recovery-record-superseded id=%s ' % msgid, text)
        self.assertIn('records_superseded=1', text)
        self.assertNotIn(msgid, gw.listdir('queue'))
        self.assertEqual(gw.find_record(msgid), ('sent', sent))
        self.assertIn(msgid, gw.listdir('data'))

    def test_claim_left_beside_its_sent_record_is_removed(self):
        """the claim a crash leaves after its record went into sent/ (one rename) and
        before the claim's unlink was durable: a dead runner's claim with the record as
        claimed (recipient pending, due), and the record in sent/: removed at recovery,
        not returned to queue/, the message not sent again"""
        tok = token()
        sink, gw, msgid, claimed, sent = self.deliver_once('relay-claim-left', tok,
                                                           first_reply='451 4.3.0 not yet')
        self.assertIn('rcpt: pending', claimed)
        claim = '%s@relaytest,%d' % (msgid, dead_pid())
        plant(gw, 'active/' + claim, claimed)
        mark = gw._log_size('smtpd')
        gw.start_smtpd()
        wait_until(lambda: 'event=relay-started ' in gw.read_log('smtpd', mark), 10, 'the relay to start')
        time.sleep(2.5)		# were it returned to queue/, it would be due and gone out by now
        self.assertEqual(len(sink.find(tok, attempts=True)), 2, 'the message was sent again')
        text = gw.read_log('smtpd', mark)
        self.assertIn('event=recovery-record-superseded id=%s name=active/%s ' % (msgid, claim), text)
        self.assertIn('claims_returned=0 ', text)
        self.assertEqual(gw.listdir('active'), [])
        self.assertNotIn(msgid, gw.listdir('queue'))
        self.assertEqual(gw.find_record(msgid), ('sent', sent))

    def test_claim_of_a_recorded_attempt_is_concluded(self):
        """a dead runner's claim that holds the record of its last attempt (every recipient
        sent), not yet renamed into sent/: back to queue/, then into sent/ without a delivery,
        attempts unchanged"""
        tok = token()
        sink, gw, msgid, _, sent = self.deliver_once('relay-concluded', tok)
        os.rename(gw.path('sent', msgid), gw.path('active', '%s@relaytest,%d' % (msgid, dead_pid())))
        mark = gw._log_size('smtpd')
        gw.start_smtpd()
        _, rec, text = wait_record(gw, msgid, lambda w, r: w == 'sent', 10, 'record of %s in sent/' % msgid)
        self.assertEqual(rec.get('attempts'), parse_record(sent).get('attempts'), text)
        wait_until(lambda: 'event=relay-sent id=%s ' % msgid in gw.read_log('smtpd', mark), 5,
                   'the relay-sent line')
        log_text = gw.read_log('smtpd', mark)
        self.assertIn('event=recovery-claim-returned id=%s ' % msgid, log_text)
        self.assertIn('event=relay-concluded id=%s ' % msgid, log_text)
        self.assertNotIn('event=relay-attempt id=%s ' % msgid, log_text)
        self.assertEqual(len(sink.find(tok, attempts=True)), 1, 'the message was sent again')
        self.assertEqual(gw.listdir('active'), [])


class Shutdown(unittest.TestCase):

    def test_sigterm_gives_claims_back(self):
        """SIGTERM during a delivery (silent smarthost): smtpd exits 0, the record is back in queue/"""
        stall = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(stall.close)
        stall.bind(('127.0.0.1', 0))
        stall.listen(16)
        gw = harness.Instance('relay-term', smarthost='127.0.0.1:%d' % stall.getsockname()[1],
                              connect_timeout=300, command_timeout=300)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        hdr, body = sink_message(token(), cc=None, bcc=None)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())
        wait_until(lambda: record(gw, msgid)[0] == 'active', 10, 'the claim of %s' % msgid)
        t0 = time.monotonic()
        self.assertEqual(gw.kill('smtpd', signal.SIGTERM), 0, 'smtpd exit status on SIGTERM')
        self.assertLess(time.monotonic() - t0, 5, 'shutdown waited for the silent smarthost')
        where, rec, text = record(gw, msgid)
        self.assertEqual(where, 'queue', 'record after shutdown is in %s' % where)
        self.assertEqual(gw.listdir('active'), [])


class FullLoop(unittest.TestCase):
    """./run's setup: the smarthost is the gateway's own listener."""

    def test_outbox_to_inbox(self):
        """outbox/ -> relay -> own SMTP -> inbox/bob/ (and Bcc'd inbox/eve/), record in sent/"""
        gw = harness.Instance('relay-loop', retry_min=1, retry_max=2)
        self.addCleanup(gw.cleanup)
        gw.cfg['smarthost'] = '127.0.0.1:%d' % gw.port
        gw.start_smtpd()
        gw.start_fs()
        tok = token()
        hdr, body = sink_message(tok, to='Bob <bob@localhost>', cc=None, bcc='eve@localhost',
                                 body='.dot first\nloop body %s\n' % tok)
        msgid, t_close = drop(gw, (hdr + '\n' + body).encode())

        def arrived(box):
            d = os.path.join(gw.mnt, 'inbox', box)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                return None
            for n in names:
                with open(os.path.join(d, n), 'rb') as f:
                    data = f.read()
                if tok.encode() in data:
                    return data
            return None
        data = wait_until(lambda: arrived('bob'), 10, 'the message in inbox/bob/')
        log('  in inbox/bob/ %.2fs after close' % (time.monotonic() - t_close))
        rp, received, content = split_stored(data)
        self.assertEqual(rp, b'Return-Path: <alice@example.org>')
        self.assertNotIn(b'bcc:', content.lower())
        self.assertTrue(content.endswith(b'\n\n.dot first\nloop body %s\n' % tok.encode()),
                        content)
        self.assertIsNotNone(wait_until(lambda: arrived('eve'), 10, 'the Bcc copy in inbox/eve/'))
        where, rec, text = wait_record(gw, msgid, lambda w, r: w == 'sent', 10,
                                       'record of %s in sent/' % msgid)
        self.assertIn(msgid + '.status', os.listdir(os.path.join(gw.mnt, 'sent')))
        self.assertTrue(all(s == 'sent' for s, _, _ in rec['rcpt']), text)


class PostfixSink(unittest.TestCase):
    """Postfix's smtp-sink as the smarthost (it offers PIPELINING)."""

    def test_smtp_sink(self):
        """delivered to smtp-sink: envelope and content in its dump, record in sent/"""
        sink_bin = shutil.which('smtp-sink') or '/usr/sbin/smtp-sink'
        if not os.access(sink_bin, os.X_OK):
            self.skipTest('smtp-sink (postfix) is not installed')
        dump = tempfile.mkdtemp(prefix='spoolgate-sink-')
        self.addCleanup(shutil.rmtree, dump, True)
        port = harness.free_port()
        argv = [sink_bin]
        if harness.IS_ROOT:
            pw = pwd.getpwnam('postfix')
            os.chown(dump, pw.pw_uid, pw.pw_gid)
            argv += ['-u', 'postfix']
        argv += ['-d', os.path.join(dump, 'm.'), '127.0.0.1:%d' % port, '10']
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop_sink():
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.addCleanup(stop_sink)

        def sink_up():
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(sink_up, 10, 'smtp-sink to listen')
        gw = harness.Instance('relay-pfsink', smarthost='127.0.0.1:%d' % port,
                              retry_min=1, retry_max=2)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        tok = token()
        hdr, body = sink_message(tok, body='.dot line %s\nsecond\n' % tok)
        msgid, _ = drop(gw, (hdr + '\n' + body).encode())

        def dumped():
            for n in os.listdir(dump):
                with open(os.path.join(dump, n), 'rb') as f:
                    data = f.read()
                if tok.encode() in data:
                    return data
            return None
        data = wait_until(dumped, 10, 'the message in the smtp-sink dump')
        self.assertIn(b'X-Mail-Args: <alice@example.org>', data)
        for a in (b'bob@example.net', b'carol@example.net', b'eve@example.net'):
            self.assertIn(b'X-Rcpt-Args: <' + a + b'>', data)
        self.assertIn(b'\n.dot line %s\nsecond\n' % tok.encode(), data)
        self.assertNotIn(b'Bcc:', data)
        wait_record(gw, msgid, lambda w, r: w == 'sent', 10, 'record of %s in sent/' % msgid)


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
