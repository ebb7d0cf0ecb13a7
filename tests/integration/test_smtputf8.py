#!/usr/bin/python3
"""test_smtputf8 - internationalised addresses (RFC 6531 SMTPUTF8).

smtplib (mail_options=['SMTPUTF8'], which makes it send UTF-8 commands)
delivers to a UTF-8 mailbox, stored under mail/<UTF-8 name>/; raw sockets
check the refusals with their codes and enhanced codes; the relay sends
to aiosmtpd with and without enable_SMTPUTF8.
"""

import os
import smtplib
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, queued_id, split_stored, wait_until

JOERG = 'j\u00f6rg'			# jörg
USER_CN = '\u7528\u6237'		# 用户
DOMAIN_CN = '\u4f8b\u5b50.\u5e7f\u544a'	# 例子.广告


def utf8(s):
    return s.encode('utf-8')


class Server(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('smtputf8')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()

    def raw(self):
        c = RawSMTP(self.gw.smtp_addr)
        self.addCleanup(c.close)
        c.ehlo()
        return c

    def test_ehlo_offers_smtputf8(self):
        """EHLO announces SMTPUTF8"""
        c = RawSMTP(self.gw.smtp_addr)
        self.addCleanup(c.close)
        r = c.cmd('EHLO client.example')
        self.assertIn('SMTPUTF8', r.lines)

    def test_smtplib_delivers_to_utf8_mailbox(self):
        """smtplib with SMTPUTF8: UTF-8 sender, mailbox and header; stored in mail/jörg/new, Received: with UTF8SMTP"""
        msg = ('From: %s@%s\r\nTo: %s@localhost\r\nSubject: gr\u00fc\u00dfe\r\n\r\nK\u00e4se\r\n'
               % (USER_CN, DOMAIN_CN, JOERG)).encode('utf-8')
        with smtplib.SMTP(*self.gw.smtp_addr, timeout=10) as s:
            s.ehlo('client.example')
            self.assertTrue(s.has_extn('smtputf8'))
            refused = s.sendmail('%s@%s' % (USER_CN, DOMAIN_CN), ['%s@localhost' % JOERG, 'J\u00d6RG@localhost'],
                                 msg, mail_options=['SMTPUTF8'])
            self.assertEqual(refused, {})
        # The ASCII letters are folded, the others kept as sent: two mailboxes.
        files = wait_until(lambda: self.gw.mailbox_new(JOERG), 5, 'mail/jörg/new')
        self.assertEqual(len(files), 1, files)
        self.assertEqual(len(self.gw.mailbox_new('j\u00d6rg')), 1)
        data = self.gw.read_mail(JOERG, files[0])
        rp, received, content = split_stored(data)
        self.assertEqual(rp, utf8('Return-Path: <%s@%s>' % (USER_CN, DOMAIN_CN)))
        self.assertIn(b'with UTF8SMTP id', received)
        self.assertEqual(content, msg.replace(b'\r\n', b'\n'))

    @unittest.skipIf(harness.fuse_available(), 'no FUSE here')
    def test_utf8_mailbox_under_the_mount(self):
        """the UTF-8 mailbox is inbox/jörg/ under the mount, its message readable there"""
        msg = ('Subject: mount\r\n\r\nunder the mount %s\r\n' % JOERG).encode('utf-8')
        with smtplib.SMTP(*self.gw.smtp_addr, timeout=10) as s:
            s.ehlo('client.example')
            s.sendmail('alice@example.org', ['%s.fs@localhost' % JOERG], msg, mail_options=['SMTPUTF8'])
        if not self.gw.running('fs'):
            self.gw.start_fs()
        box = os.path.join(self.gw.mnt, 'inbox', JOERG + '.fs')
        self.assertIn(JOERG + '.fs', os.listdir(os.path.join(self.gw.mnt, 'inbox')))
        names = [n for n in wait_until(lambda: os.listdir(box), 5, 'a message in inbox/jörg.fs')]
        with open(os.path.join(box, names[0]), 'rb') as f:
            self.assertIn(utf8('under the mount %s' % JOERG), f.read())

    def test_refused_without_smtputf8(self):
        """no SMTPUTF8 on MAIL: a UTF-8 sender or recipient is 553 5.6.7"""
        c = self.raw()
        c.send(utf8('MAIL FROM:<%s@example.org>\r\n' % JOERG))
        assert_reply(self, c.reply(), 553, '5.6.7', 'UTF-8 sender without SMTPUTF8')
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250, '2.1.0')
        c.send(utf8('RCPT TO:<%s@localhost>\r\n' % JOERG))
        assert_reply(self, c.reply(), 553, '5.6.7', 'UTF-8 recipient without SMTPUTF8')
        # An ASCII message with SMTPUTF8 is fine; the next transaction forgets it.
        assert_reply(self, c.cmd('RSET'), 250)
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org> SMTPUTF8'), 250, '2.1.0')
        c.send(utf8('RCPT TO:<%s@localhost>\r\n' % JOERG))
        assert_reply(self, c.reply(), 250, '2.1.5', 'UTF-8 recipient with SMTPUTF8')
        assert_reply(self, c.cmd('RSET'), 250)
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250, '2.1.0')
        c.send(utf8('RCPT TO:<%s@localhost>\r\n' % JOERG))
        assert_reply(self, c.reply(), 553, '5.6.7', 'SMTPUTF8 belongs to one transaction')

    def test_malformed_and_oversized_utf8(self):
        """with SMTPUTF8: malformed UTF-8 553 5.1.7 / 553 5.1.3, C1 control 553 5.1.3, a 66-octet mailbox 553 5.1.3"""
        c = self.raw()
        c.send(b'MAIL FROM:<j\xc3rg@example.org> SMTPUTF8\r\n')
        assert_reply(self, c.reply(), 553, '5.1.7', 'cut UTF-8 sequence in the sender')
        c.send(b'MAIL FROM:<j\xc0\xafrg@example.org> SMTPUTF8\r\n')
        assert_reply(self, c.reply(), 553, '5.1.7', 'overlong UTF-8 in the sender')
        assert_reply(self, c.cmd('MAIL FROM:<alice@example.org> SMTPUTF8'), 250, '2.1.0')
        c.send(b'RCPT TO:<b\xed\xa0\x80b@localhost>\r\n')
        assert_reply(self, c.reply(), 553, '5.1.3', 'UTF-16 surrogate in the recipient')
        c.send(b'RCPT TO:<b\xc2\x85b@localhost>\r\n')
        assert_reply(self, c.reply(), 553, '5.1.3', 'C1 control (NEL) in the recipient')
        c.send(utf8('RCPT TO:<%s@localhost>\r\n' % ('\u00f6' * 33)))
        assert_reply(self, c.reply(), 553, '5.1.3', '33 characters, 66 octets: over 64')
        c.send(utf8('RCPT TO:<%s@localhost>\r\n' % ('\u00f6' * 32)))
        assert_reply(self, c.reply(), 250, '2.1.5', '32 characters, 64 octets')


class Sink:
    """aiosmtpd in this process; enable_SMTPUTF8 decides whether it offers SMTPUTF8."""

    def __init__(self, smtputf8):
        from aiosmtpd.controller import Controller
        self.lock = threading.Lock()
        self.received = []
        self.port = harness.free_port()
        self.controller = Controller(self, hostname='127.0.0.1', port=self.port,
                                     server_hostname='sink.test', enable_SMTPUTF8=smtputf8)
        self.controller.start()

    def stop(self):
        self.controller.stop()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append({'from': envelope.mail_from, 'rcpt': list(envelope.rcpt_tos),
                                  'mail_options': list(envelope.mail_options),
                                  'data': envelope.original_content})
        return '250 2.0.0 sink got it'


class Relay(unittest.TestCase):

    def gateway(self, smtputf8):
        try:
            sink = Sink(smtputf8)
        except ImportError as e:
            raise unittest.SkipTest('aiosmtpd is not available: %s' % e)
        self.addCleanup(sink.stop)
        gw = harness.Instance('smtputf8-relay', smarthost='127.0.0.1:%d' % sink.port,
                              retry_min=1, retry_max=2)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        return sink, gw

    def send(self, gw, sender, rcpts, tok):
        msg = ('From: %s\r\nSubject: relay %s \u00e9t\u00e9\r\n\r\nbody %s\r\n' % (sender, tok, tok)).encode()
        with smtplib.SMTP(*gw.smtp_addr, timeout=10) as s:
            s.ehlo('client.example')
            s.sendmail(sender, rcpts, msg, mail_options=['SMTPUTF8'])
            code, text = s.noop()
        return msg

    def queued(self, gw):
        """The id of the message sent (a failure notice to its sender, from <>, may be there too)."""
        ids = [i for i in gw.record_ids() if 'from: <>\n' not in (gw.find_record(i)[1] or 'from: <>\n')]
        self.assertEqual(len(ids), 1, ids)
        return ids[0]

    def test_relayed_to_a_server_with_smtputf8(self):
        """aiosmtpd with SMTPUTF8: MAIL ... SMTPUTF8, UTF-8 sender and recipient as sent; record in sent/"""
        sink, gw = self.gateway(True)
        sender, rcpt = '%s@%s' % (USER_CN, DOMAIN_CN), '%s@example.net' % JOERG
        msg = self.send(gw, sender, [rcpt], 'u1')
        got = wait_until(lambda: sink.received, 15, 'the sink to get the message')
        self.assertEqual(got[0]['from'], sender)
        self.assertEqual(got[0]['rcpt'], [rcpt])
        self.assertIn('SMTPUTF8', got[0]['mail_options'])
        self.assertIn(msg.split(b'\r\n\r\n')[1], got[0]['data'])
        msgid = self.queued(gw)
        wait_until(lambda: os.path.exists(gw.path('sent', msgid)), 10, 'the record in sent/')
        self.assertIn('smtputf8: yes', open(gw.path('sent', msgid), encoding='utf-8').read())

    def test_553_5_6_7_not_offered(self):
        """aiosmtpd without SMTPUTF8: the UTF-8 recipient fails 553 5.6.7 into failed/, the ASCII one is delivered"""
        sink, gw = self.gateway(False)
        rcpt_utf8, rcpt_ascii = '%s@example.net' % JOERG, 'bob@example.net'
        self.send(gw, 'alice@example.org', [rcpt_utf8, rcpt_ascii], 'u2')
        got = wait_until(lambda: sink.received, 15, 'the sink to get the message')
        self.assertEqual(got[0]['rcpt'], [rcpt_ascii])
        self.assertNotIn('SMTPUTF8', got[0]['mail_options'])
        msgid = self.queued(gw)
        wait_until(lambda: os.path.exists(gw.path('failed', msgid)), 10, 'the record in failed/')
        text = open(gw.path('failed', msgid), encoding='utf-8').read()
        self.assertRegex(text, r'rcpt: failed <%s> 553 5\.6\.7 .*does not offer SMTPUTF8' % rcpt_utf8)
        self.assertRegex(text, r'rcpt: sent <bob@example.net> 250 ')

    def test_utf8_sender_fails_without_smtputf8(self):
        """aiosmtpd without SMTPUTF8 and a UTF-8 sender: every recipient fails 553 5.6.7, nothing sent"""
        sink, gw = self.gateway(False)
        self.send(gw, '%s@example.org' % JOERG, ['bob@example.net'], 'u3')
        msgid = self.queued(gw)
        wait_until(lambda: os.path.exists(gw.path('failed', msgid)), 15, 'the record in failed/')
        text = open(gw.path('failed', msgid), encoding='utf-8').read()
        self.assertRegex(text, r'rcpt: failed <bob@example.net> 553 5\.6\.7 ')
        time.sleep(0.5)
        self.assertEqual(sink.received, [])


if __name__ == '__main__':
    harness.main()
