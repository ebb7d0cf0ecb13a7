#!/usr/bin/python3
"""test_dsn_params - DSN (RFC 3461): parameters taken, stored, honoured, passed on.

- EHLO announces DSN; RET=, ENVID=, NOTIFY=, ORCPT= are taken and malformed
  ones get 501 5.5.4 (a NOTIFY list with NEVER, bad xtext, an ORCPT without
  addr-type, RET=ALL, a duplicate);
- the envelope record keeps them (dsn-ret, dsn-envid, rcpt-dsn lines);
- the bounce code honours them, with an aiosmtpd sink that refuses the
  recipient: NOTIFY=NEVER makes no report (dsn: none notify); NOTIFY=FAILURE
  makes one that names Original-Envelope-Id and Original-Recipient, decoded;
  RET=FULL returns the whole message (message/rfc822), RET=HDRS the headers,
  RET=FULL over dsn_full_max the headers and says why;
- NOTIFY=SUCCESS: one "delivered" notice for a local mailbox (in the local
  sender's mailbox, or relayed with MAIL FROM:<> to a remote sender), one
  "relayed" notice for the sink (no DSN); none for NEVER, FAILURE or <>;
- NOTIFY without DELAY gets no delay warning (dsn-delayed: none notify);
- a private Postfix that offers DSN receives them from the relay: Postfix's
  own queue file (postcat) holds the ENVID, RET, NOTIFY and ORCPT spoolgate
  got from its client (Postfix holds the message by a header check, so its
  queue file can be read), and no "relayed" notice is made (Postfix
  reports itself).
"""

import email
import email.policy
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
import peers
from harness import RawSMTP, assert_reply, parse_record, queued_id, wait_until
from test_replies import sink_or_skip, started, token

POSTCAT = '/usr/sbin/postcat'


def transaction(tc, addr, mail, rcpt, body):
    """One message through a raw session; returns the queue id."""
    with RawSMTP(addr) as c:
        c.ehlo()
        assert_reply(tc, c.cmd(mail), 250, '2.1.0', mail)
        assert_reply(tc, c.cmd(rcpt), 250, '2.1.5', rcpt)
        assert_reply(tc, c.cmd('DATA'), 354)
        c.send(body.replace('\n', '\r\n') + '\r\n.\r\n')
        r = c.reply()
        assert_reply(tc, r, 250, '2.0.0', 'end of data')
        return queued_id(r.text)


def sink_and_gateway(cls, name, rcpt_rules, **cfg):
    """An aiosmtpd sink refusing rcpt_rules, and a gateway (hostname gw.test, quick retries) relaying to it."""
    cls.sink = sink_or_skip()
    cls.addClassCleanup(cls.sink.stop)
    cls.sink.rcpt_rules.update(rcpt_rules)
    cls.gw = started(cls, name, smarthost='127.0.0.1:%d' % cls.sink.port, hostname='gw.test',
                     retry_min=1, **cfg)


class Parameters(unittest.TestCase):
    """Nothing listens at the smarthost: what is queued stays in queue/."""

    @classmethod
    def setUpClass(cls):
        cls.gw = started(cls, 'dsn-params')

    def test_ehlo_offers_dsn(self):
        """EHLO lists DSN"""
        with RawSMTP(self.gw.smtp_addr) as c:
            self.assertIn('DSN', c.ehlo().lines)

    def test_501_malformed(self):
        """malformed DSN parameters: 501 5.5.4 each, the transaction goes on"""
        with RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            for bad in ('RET=ALL', 'RET', 'ENVID=a+2', 'ENVID=a+0Ab', 'RET=FULL RET=HDRS'):
                assert_reply(self, c.cmd('MAIL FROM:<a@example.org> ' + bad), 501, '5.5.4', bad)
            assert_reply(self, c.cmd('MAIL FROM:<a@example.org> RET=FULL ENVID=x'), 250, '2.1.0')
            for bad in ('NOTIFY=NEVER,SUCCESS', 'NOTIFY=SOMETIMES', 'NOTIFY=', 'ORCPT=bob@x',
                        'ORCPT=rfc822;b+zz', 'NOTIFY=DELAY NOTIFY=DELAY'):
                assert_reply(self, c.cmd('RCPT TO:<bob@example.net> ' + bad), 501, '5.5.4', bad)
            assert_reply(self, c.cmd('RCPT TO:<bob@example.net> FOO=1'), 555, '5.5.4', 'unknown')
            assert_reply(self, c.cmd('RCPT TO:<bob@example.net> NOTIFY=NEVER'), 250, '2.1.5')

    def test_stored_in_the_record(self):
        """RET, ENVID, NOTIFY and ORCPT are in the queued record, as sent"""
        msgid = transaction(self, self.gw.smtp_addr,
                            'MAIL FROM:<alice@localhost> RET=HDRS ENVID=QQ+2B314159',
                            'RCPT TO:<bob@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bold@example.net',
                            'Subject: stored\n\nstored')
        _, text = self.gw.find_record(msgid)
        self.assertIn('\ndsn-ret: HDRS\n', text)
        self.assertIn('\ndsn-envid: QQ+2B314159\n', text)
        self.assertRegex(text, r'\nrcpt: pending <bob@example.net>[^\n]*\n'
                         r'rcpt-dsn: notify=SUCCESS,DELAY orcpt=rfc822;bob\+2Bold@example.net\n')


class Honoured(unittest.TestCase):
    """The sink refuses bob@example.net with 550: who gets a report."""

    @classmethod
    def setUpClass(cls):
        sink_and_gateway(cls, 'dsn-honoured', {'bob@example.net': '550 5.1.1 <bob@example.net>: no such user here'},
                         retry_max=2, dsn_full_max=4096)

    def failed(self, msgid):
        def check():
            try:
                with open(self.gw.path('failed', msgid)) as f:
                    return f.read()
            except FileNotFoundError:
                return None
        return wait_until(check, 20, 'failed/%s' % msgid)

    def test_notify_never_makes_no_report(self):
        """NOTIFY=NEVER: the failure is recorded, no report is made (dsn: none notify)"""
        before = set(self.gw.mailbox_new('carol'))
        msgid = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<carol@localhost>',
                            'RCPT TO:<bob@example.net> NOTIFY=NEVER', 'Subject: never\n\nnever')
        rec = parse_record(self.failed(msgid))
        self.assertEqual(rec.get('dsn'), 'none notify', rec)
        self.assertIn('event=dsn-suppressed id=%s' % msgid, self.gw.read_log('smtpd'))
        self.assertEqual(set(self.gw.mailbox_new('carol')), before)

    def test_notify_failure_names_envid_and_orcpt(self):
        """NOTIFY=FAILURE: one report, with Original-Envelope-Id and Original-Recipient decoded"""
        msgid = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<dora@localhost> RET=HDRS ENVID=QQ+2B2718',
                            'RCPT TO:<bob@example.net> NOTIFY=FAILURE ORCPT=rfc822;bob+2Bold@localhost',
                            'Subject: failure\n\nSECRET BODY')
        rec = parse_record(self.failed(msgid))
        box = wait_until(lambda: self.gw.mailbox_new('dora'), 10, 'a report in mail/dora/new')
        self.assertTrue(box[0].startswith(rec['dsn'] + '.'), (box, rec))
        msg = email.message_from_bytes(self.gw.read_mail('dora', box[0]), policy=email.policy.default)
        status = [p for p in msg.walk() if p.get_content_type() == 'message/delivery-status'][0]
        text = '\n\n'.join(str(b).strip() for b in status.get_payload())
        self.assertRegex(text, r'Original-Envelope-Id: QQ\+2718')
        self.assertRegex(text, r'Original-Recipient: rfc822;bob\+old@localhost')
        self.assertRegex(text, r'Final-Recipient: rfc822; ?bob@example.net')
        self.assertNotIn(b'SECRET BODY', self.gw.read_mail('dora', box[0]))

    def report(self, sender, ret, body):
        """A message to the refused bob from sender with RET=ret: its report, parsed."""
        box = sender.split('@')[0]
        before = set(self.gw.mailbox_new(box))
        msgid = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<%s> %s' % (sender, ret),
                            'RCPT TO:<bob@example.net>', body)
        rec = parse_record(self.failed(msgid))
        new = wait_until(lambda: sorted(set(self.gw.mailbox_new(box)) - before), 10,
                         'a report in mail/%s/new' % box)
        self.assertEqual(len(new), 1, new)
        self.assertTrue(new[0].startswith(rec['dsn'] + '.'), (new, rec))
        return email.message_from_bytes(self.gw.read_mail(box, new[0]), policy=email.policy.default)

    def parts(self, msg):
        return [p.get_content_type() for p in msg.get_payload()]

    def test_ret_full_returns_the_whole_message(self):
        """RET=FULL: the third part is the whole original (message/rfc822), body included"""
        msg = self.report('erin@localhost', 'RET=FULL', 'Subject: full\n\nTHE WHOLE BODY\nline two')
        self.assertEqual(self.parts(msg), ['text/plain', 'message/delivery-status', 'message/rfc822'])
        orig = msg.get_payload()[2].get_payload()[0]
        self.assertEqual(orig['Subject'], 'full')
        self.assertEqual(orig.get_content().rstrip('\n'), 'THE WHOLE BODY\nline two')
        self.assertIn('Your message is attached.', msg.get_payload()[0].get_content())

    def test_ret_hdrs_returns_the_headers(self):
        """RET=HDRS: the third part is the header section only (text/rfc822-headers)"""
        msg = self.report('fred@localhost', 'RET=HDRS', 'Subject: hdrs\n\nTHE WHOLE BODY')
        self.assertEqual(self.parts(msg), ['text/plain', 'message/delivery-status', 'text/rfc822-headers'])
        self.assertIn('Subject: hdrs', msg.get_payload()[2].get_content())
        self.assertNotIn('THE WHOLE BODY', msg.as_string())

    def test_ret_full_over_the_bound_returns_the_headers_and_says_so(self):
        """RET=FULL over dsn_full_max (4096 here): headers only, and the text says why"""
        body = 'Subject: big\n\n' + ('BIG BODY LINE %s\n' % ('x' * 60)) * 80
        msg = self.report('gina@localhost', 'RET=FULL', body)
        self.assertEqual(self.parts(msg), ['text/plain', 'message/delivery-status', 'text/rfc822-headers'])
        self.assertNotIn('BIG BODY LINE', msg.as_string())
        self.assertRegex(msg.get_payload()[0].get_content(), r'larger than the 4096 octets')


class Success(unittest.TestCase):
    """NOTIFY=SUCCESS (RFC 3461 6.2): "delivered" for a local mailbox, "relayed" to a next
    hop without DSN (the aiosmtpd sink offers none); never for <>, none for NEVER."""

    @classmethod
    def setUpClass(cls):
        sink_and_gateway(cls, 'dsn-success', {}, retry_max=2)

    def notices(self, box, msgid):
        """The success notices about msgid in mail/<box>/new, parsed."""
        out = []
        for name in self.gw.mailbox_new(box):
            m = email.message_from_bytes(self.gw.read_mail(box, name), policy=email.policy.default)
            if m['Subject'] == 'Successful Mail Delivery Report' and msgid in self.status_text(m) + str(m):
                out.append(m)
        return out

    @staticmethod
    def status_text(msg):
        for p in msg.walk():
            if p.get_content_type() == 'message/delivery-status':
                return '\n\n'.join(str(b).strip() for b in p.get_payload())
        return ''

    def one_notice(self, box, tok):
        """Exactly one success notice naming tok (its Subject is in the returned headers), after a settle."""
        def find():
            return [m for m in self.notices(box, '') if tok in m.as_string()]
        got = wait_until(find, 20, 'a success notice in mail/%s/new' % box)
        time.sleep(2)					# a second notice would come now
        got = find()
        self.assertEqual(len(got), 1, [m.as_string() for m in got])
        return got[0]

    def test_delivered_notice_for_a_local_mailbox(self):
        """NOTIFY=SUCCESS to a local mailbox: the recipient has it, the local sender one "delivered" notice"""
        tok = token()
        msgid = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<hana@localhost> ENVID=E' + tok,
                            'RCPT TO:<ivan@localhost> NOTIFY=SUCCESS', 'Subject: %s\n\nbody' % tok)
        self.assertTrue(self.gw.find_mail('ivan', msgid))
        msg = self.one_notice('hana', tok)
        text = self.status_text(msg)
        self.assertRegex(text, r'Final-Recipient: rfc822; ?ivan@localhost')
        self.assertRegex(text, r'Action: delivered')
        self.assertRegex(text, r'Status: 2\.0\.0')
        self.assertRegex(text, r'Original-Envelope-Id: E' + tok)
        _, rec = self.gw.find_record(msgid)
        self.assertRegex(rec, r'rcpt: sent <ivan@localhost>[^\n]*\nrcpt-dsn: notify=SUCCESS\n'
                         r'rcpt-success: delivered \d[\w.]+\n')

    def test_delivered_notice_to_a_remote_sender_goes_through_the_relay(self):
        """a remote sender's "delivered" notice is relayed with MAIL FROM:<>"""
        tok = token()
        transaction(self, self.gw.smtp_addr, 'MAIL FROM:<jo@example.com>',
                    'RCPT TO:<kim@localhost> NOTIFY=SUCCESS', 'Subject: %s\n\nbody' % tok)
        got = wait_until(lambda: self.sink.find(tok), 20, 'the notice at the sink')
        self.assertEqual(len(got), 1)
        self.assertIn(got[0]['from'], ('', '<>'))	# aiosmtpd keeps the brackets of <>
        self.assertEqual(got[0]['rcpt'], ['jo@example.com'])
        self.assertIn(b'Action: delivered', got[0]['data'])

    def test_relayed_notice_for_a_next_hop_without_dsn(self):
        """NOTIFY=SUCCESS relayed to a server without DSN: one "relayed" notice, no NOTIFY= passed"""
        tok = token()
        msgid = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<lea@localhost>',
                            'RCPT TO:<max@example.net> NOTIFY=SUCCESS,FAILURE', 'Subject: %s\n\nbody' % tok)
        wait_until(lambda: self.sink.find(tok), 20, 'the message at the sink')
        msg = self.one_notice('lea', tok)
        text = self.status_text(msg)
        self.assertRegex(text, r'Final-Recipient: rfc822; ?max@example.net')
        self.assertRegex(text, r'Action: relayed')
        self.assertRegex(text, r'Remote-MTA: dns; ?127.0.0.1')
        _, rec = self.gw.find_record(msgid)
        self.assertRegex(rec, r'rcpt-success: relayed \d[\w.]+\n')

    def test_no_notice_without_success_or_for_null_sender(self):
        """NOTIFY=NEVER, NOTIFY=FAILURE and MAIL FROM:<> get no success notice"""
        tok = token()
        for mail, notify in (('MAIL FROM:<olga@localhost>', 'NEVER'), ('MAIL FROM:<olga@localhost>', 'FAILURE'),
                             ('MAIL FROM:<>', 'SUCCESS')):
            transaction(self, self.gw.smtp_addr, mail, 'RCPT TO:<ivan@localhost> NOTIFY=' + notify,
                        'Subject: %s %s\n\nbody' % (tok, notify))
        # then one that asks, so that the runner has been through the others
        transaction(self, self.gw.smtp_addr, 'MAIL FROM:<olga@localhost>', 'RCPT TO:<ivan@localhost> NOTIFY=SUCCESS',
                    'Subject: %s SUCCESS\n\nbody' % tok)
        msg = self.one_notice('olga', tok)
        self.assertIn('%s SUCCESS' % tok, msg.as_string())
        self.assertEqual(len(self.gw.mailbox_new('olga')), 1)


class Delay(unittest.TestCase):
    """NOTIFY governs delay warnings (delay_warning_time = 1, a sink that answers 451)."""

    @classmethod
    def setUpClass(cls):
        sink_and_gateway(cls, 'dsn-delay', {'slow@example.net': '451 4.3.0 try again later'},
                         retry_max=1, delay_warning_time=1)

    def deferred_record(self, msgid):
        def check():
            _, text = self.gw.find_record(msgid)
            return text if text and 'dsn-delayed: ' in text else None
        return parse_record(wait_until(check, 20, 'the delay decision of %s' % msgid))

    def test_notify_without_delay_gets_no_warning(self):
        """NOTIFY=FAILURE: no delay warning (dsn-delayed: none notify); NOTIFY=DELAY: one"""
        quiet = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<pia@localhost>',
                            'RCPT TO:<slow@example.net> NOTIFY=FAILURE', 'Subject: quiet\n\nq')
        warned = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<quinn@localhost>',
                             'RCPT TO:<slow@example.net> NOTIFY=DELAY', 'Subject: warned\n\nw')
        self.assertEqual(self.deferred_record(quiet).get('dsn-delayed'), 'none notify')
        self.assertRegex(self.deferred_record(warned).get('dsn-delayed'), r'^\d')
        self.assertEqual(self.gw.mailbox_new('pia'), [])
        self.assertEqual(len(self.gw.mailbox_new('quinn')), 1)


class PassedOn(unittest.TestCase):
    """The relay to a Postfix that offers DSN."""

    @classmethod
    def setUpClass(cls):
        why = peers.missing()
        if why:
            raise unittest.SkipTest(why)
        cls.gw = harness.Instance('dsn-passed', hostname='gw.test')
        cls.addClassCleanup(cls.gw.cleanup)
        ca = peers.TestCA(os.path.join(cls.gw.dir, 'ca'))
        cert = ca.issue('mx', dns=['mx.test'], ips=['127.0.0.1'])
        pfdir = os.path.join(cls.gw.dir, 'postfix')
        os.makedirs(pfdir)
        checks = os.path.join(pfdir, 'header_checks')
        with open(checks, 'w') as f:
            f.write('/^Subject: dsn-hold/ HOLD kept for the test\n')
        svc = peers.Service('mx', tls='none', auth=False)
        cls.pf = peers.Postfix(pfdir, ca, cert, users={}, services=[svc],
                               extra_main={'header_checks': 'regexp:' + checks,
                                           'smtpd_relay_restrictions': 'permit_mynetworks, reject'})
        cls.addClassCleanup(cls.pf.cleanup)
        cls.pf.start()
        cls.gw.cfg['smarthost'] = svc.addr
        cls.gw.write_config()
        cls.gw.start_smtpd()

    def test_postfix_gets_the_parameters(self):
        """Postfix's queue file holds ENVID, RET, NOTIFY and ORCPT as spoolgate's client gave them"""
        tok = token()
        msgid = transaction(self, self.gw.smtp_addr, 'MAIL FROM:<alice@localhost> RET=HDRS ENVID=QQ+2B%s' % tok,
                            'RCPT TO:<box@%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+2Bold@localhost'
                            % peers.DEST_DOMAIN, 'Subject: dsn-hold %s\n\nheld' % tok)
        wait_until(lambda: os.path.exists(self.gw.path('sent', msgid)), 30, 'sent/%s' % msgid)
        m = wait_until(lambda: re.search(r'postfix/cleanup\[\d+\]: (\w+): hold: header Subject: dsn-hold %s'
                                         % tok, self.pf.read_log()), 30, "Postfix's hold line")
        r = subprocess.run([POSTCAT, '-c', self.pf.conf, '-q', m.group(1)], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Postfix keeps them decoded, as named attributes of its queue file
        self.assertIn('named_attribute: envelope_id=QQ+%s\n' % tok, r.stdout)
        self.assertIn('named_attribute: ret_flags=2\n', r.stdout)		# DSN_RET_HDRS (Postfix's dsn.h)
        self.assertIn('named_attribute: notify_flags=6\n', r.stdout)	# SUCCESS (2) | FAILURE (4)
        self.assertIn('named_attribute: dsn_orig_rcpt=rfc822;alice+old@localhost\n', r.stdout)
        # Postfix reports success itself (RFC 3461 5.2.2): no "relayed" notice from us
        _, rec = self.gw.find_record(msgid)
        self.assertIn('\nrcpt-success: relayed none passed-on\n', rec)
        self.assertEqual(self.gw.mailbox_new('alice'), [])


if __name__ == '__main__':
    harness.main()
