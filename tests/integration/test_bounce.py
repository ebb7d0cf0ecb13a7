#!/usr/bin/python3
"""test_bounce - delivery status notifications (smtpd/bounce.c, common/dsn.c).

Messages enter through smtpd's own SMTP listener (smtplib) and are relayed
to an aiosmtpd sink that refuses some recipients:
- a local sender (alice@localhost) whose message is refused with 550 gets
  exactly one RFC 3464 report in mail/alice/new (Return-Path: <>) naming the
  recipient, the host and the reply, and failed/<id> records rcpt-at: and
  dsn:; after a restart of smtpd there is still one;
- a message with the null sender <> that fails makes none (dsn: none
  null-sender), nothing reaches the sink but the refused attempt;
- 50 failures from one sender produce bounce_limit_per_hour reports and the
  log names the others (event=dsn-suppressed reason=cap);
- a remote sender's report is relayed with MAIL FROM:<>, and when that
  report is refused in turn nothing more is made;
- a message whose max_queue_lifetime runs out gets one report (5.4.7,
  with the last host and reply);
- delay_warning_time: one Action: delayed report while the sink keeps
  answering 451, however many attempts follow.
"""

import email
import email.policy
import os
import re
import smtplib
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, parse_record, queued_id, wait_until
from test_relay import Sink

REFUSAL = '550 5.1.1 <bob@example.net>: no such user here'


def token():
    return uuid.uuid4().hex[:12]


def submit(gw, sender, rcpts, tok):
    """One message through smtpd's SMTP listener; returns its queue id."""
    body = ('From: <%s>\r\nTo: %s\r\nSubject: bounce test %s\r\n'
            'Message-ID: <%s@test>\r\n\r\nbody %s\r\n'
            % (sender or 'nobody@example.org', ', '.join(rcpts), tok, tok, tok))
    with smtplib.SMTP(*gw.smtp_addr, timeout=10) as c:
        c.ehlo('client.example')
        code, _ = c.mail('<%s>' % sender if sender else '<>')
        assert code == 250, code
        for r in rcpts:
            code, _ = c.rcpt(r)
            assert code == 250, (r, code)
        code, text = c.data(body.encode())
        assert code == 250, (code, text)
    return queued_id(text)


def failed_record(gw, msgid, timeout=15):
    def check():
        try:
            with open(gw.path('failed', msgid)) as f:
                return f.read()
        except FileNotFoundError:
            return None
    return wait_until(check, timeout, 'failed/%s' % msgid)


def report_parts(data):
    """(message, human text, delivery-status text, headers text) of a report."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == 'multipart/report', msg.get_content_type()
    assert msg.get_param('report-type') == 'delivery-status'
    parts = list(msg.iter_parts())
    types = [p.get_content_type() for p in parts]
    assert types[:2] == ['text/plain', 'message/delivery-status'], types
    human = parts[0].get_content()
    status = parts[1]
    # Python reads message/delivery-status as a list of header blocks.
    blocks = status.get_payload()
    status_text = '\n\n'.join(str(b).strip() for b in blocks)
    headers = parts[2].get_content() if len(parts) > 2 else ''
    return msg, human, status_text, headers


class Bounces(unittest.TestCase):

    def setUp(self):
        try:
            self.sink = Sink()
        except ImportError as e:
            raise unittest.SkipTest('aiosmtpd is not available: %s' % e)
        self.addCleanup(self.sink.stop)
        self.sink.rcpt_rules['bob@example.net'] = REFUSAL

    def gateway(self, name, **cfg):
        gw = harness.Instance(name, smarthost='127.0.0.1:%d' % self.sink.port, hostname='gw.test',
                              scan_interval=300, retry_min=1, retry_max=2, **cfg)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        return gw

    def test_local_sender_gets_one_report(self):
        """alice@localhost, refused with 550: one report in mail/alice/new, and still one after a restart"""
        gw = self.gateway('bounce-local')
        tok = token()
        msgid = submit(gw, 'alice@localhost', ['bob@example.net'], tok)
        text = failed_record(gw, msgid)
        rec = parse_record(text)
        self.assertEqual(rec['rcpt'][0][:2], ('failed', 'bob@example.net'), text)
        host = '127.0.0.1:%d' % self.sink.port
        self.assertRegex(text, r'\nrcpt: failed <bob@example.net> %s\nrcpt-at: \d+ %s\n'
                         % (re.escape(REFUSAL), re.escape(host)))
        self.assertRegex(rec.get('dsn', ''), r'^\d+\.M\d+P\d+Q\d+$', text)
        box = wait_until(lambda: gw.mailbox_new('alice'), 10, 'a report in mail/alice/new')
        self.assertEqual(len(box), 1, box)
        self.assertTrue(box[0].startswith(rec['dsn'] + '.'), (box, rec['dsn']))
        data = gw.read_mail('alice', box[0])
        self.assertTrue(data.startswith(b'Return-Path: <>\n'), data[:80])
        msg, human, status, headers = report_parts(data)
        self.assertEqual(msg['To'], 'alice@localhost')
        self.assertEqual(msg['From'].addresses[0].addr_spec, 'MAILER-DAEMON@gw.test')
        self.assertEqual(msg['Auto-Submitted'], 'auto-replied')
        self.assertEqual(msg['Message-ID'], '<%s@gw.test>' % rec['dsn'])
        self.assertIn('<bob@example.net>: the host %s said' % host, human)
        self.assertIn(REFUSAL, ' '.join(human.split()))
        self.assertIn('Reporting-MTA: dns; gw.test', status)
        self.assertIn('Final-Recipient: rfc822; bob@example.net', status)
        self.assertIn('Action: failed', status)
        self.assertIn('Status: 5.1.1', status)
        self.assertIn('Remote-MTA: dns; 127.0.0.1', status)
        self.assertIn('Diagnostic-Code: smtp; ' + REFUSAL, ' '.join(status.split('\n ')))
        self.assertIn('Subject: bounce test %s' % tok, headers)
        self.assertNotIn('body %s' % tok, data.decode('ascii'))
        self.assertIn('event=dsn-queued id=%s dsn=%s to=alice@localhost kind=failed via=mailbox'
                      % (msgid, rec['dsn']), gw.read_log('smtpd'))
        # A restart reads failed/ (recovery, the first scan) and makes nothing new.
        gw.stop('smtpd')
        gw.start_smtpd()
        tok2 = token()
        submit(gw, 'alice@localhost', ['nobody-%s@localhost' % tok2], tok2)	# a message through the restarted daemon
        wait_until(lambda: gw.mailbox_new('nobody-%s' % tok2), 10, 'the local message after the restart')
        self.assertEqual(gw.mailbox_new('alice'), box)
        self.assertEqual(gw.read_log('smtpd').count('event=dsn-queued'), 1)

    def test_null_sender_makes_none(self):
        """a message from <> that fails makes no report (no bounce of a bounce)"""
        gw = self.gateway('bounce-null')
        msgid = submit(gw, '', ['bob@example.net'], token())
        rec = parse_record(failed_record(gw, msgid))
        self.assertEqual(rec.get('dsn'), 'none null-sender')
        self.assertIn('event=dsn-suppressed id=%s to="" kind=failed reason=null-sender' % msgid,
                      gw.read_log('smtpd'))
        self.assertEqual(gw.all_files('mail'), [])
        self.assertEqual(gw.listdir('queue'), [])
        self.assertEqual(sorted(gw.record_ids()), [msgid])
        self.assertEqual(self.sink.received, [])

    def test_cap_per_sender(self):
        """50 failures from one sender: bounce_limit_per_hour reports, the rest logged as held back"""
        cap = 3
        gw = self.gateway('bounce-cap', bounce_limit_per_hour=cap, max_deliveries=8)
        ids = [submit(gw, 'carol@localhost', ['bob@example.net'], token()) for _ in range(50)]
        recs = [parse_record(failed_record(gw, i, timeout=60)) for i in ids]
        made = [r['id'] for r in recs if re.match(r'^\d', r.get('dsn', ''))]
        held = [r['id'] for r in recs if r.get('dsn') == 'none cap']
        self.assertEqual(len(made), cap, [r.get('dsn') for r in recs])
        self.assertEqual(len(held), 50 - cap)
        wait_until(lambda: len(gw.mailbox_new('carol')) >= cap, 10, 'the reports')
        self.assertEqual(len(gw.mailbox_new('carol')), cap)
        logged = re.findall(r'event=dsn-suppressed id=(\S+) to=carol@localhost kind=failed reason=cap',
                            gw.read_log('smtpd'))
        self.assertEqual(sorted(logged), sorted(held))
        log('  50 failures: %d reports, %d held back' % (len(made), len(logged)))
        # Another sender is not held back by carol's cap.
        msgid = submit(gw, 'dan@localhost', ['bob@example.net'], token())
        self.assertRegex(parse_record(failed_record(gw, msgid)).get('dsn', ''), r'^\d')

    def test_remote_sender_report_relayed_with_null_sender(self):
        """a remote sender's report goes to the relay with MAIL FROM:<>; its own refusal makes none"""
        gw = self.gateway('bounce-remote')
        tok = token()
        msgid = submit(gw, 'dave@remote.example', ['bob@example.net'], tok)
        rec = parse_record(failed_record(gw, msgid))
        dsn = rec.get('dsn', '')
        self.assertRegex(dsn, r'^\d')
        got = wait_until(lambda: [m for m in self.sink.received if m['rcpt'] == ['dave@remote.example']],
                         10, 'the report at the sink')
        self.assertEqual(len(got), 1)
        # aiosmtpd gives the address inside the brackets, and '<>' for the null reverse path.
        self.assertEqual(got[0]['from'], '<>')
        msg, human, status, headers = report_parts(got[0]['data'])
        self.assertEqual(msg['To'], 'dave@remote.example')
        self.assertIn('Final-Recipient: rfc822; bob@example.net', status)
        self.assertIn('Subject: bounce test %s' % tok, headers)
        self.assertNotIn(b'Return-Path', got[0]['data'])
        self.assertIn('event=dsn-queued id=%s dsn=%s to=dave@remote.example kind=failed via=relay'
                      % (msgid, dsn), gw.read_log('smtpd'))
        # The report to a sender that refuses it fails in turn, and makes nothing.
        self.sink.rcpt_rules['erin@remote.example'] = '550 5.1.1 no erin'
        msgid = submit(gw, 'erin@remote.example', ['bob@example.net'], token())
        dsn = parse_record(failed_record(gw, msgid)).get('dsn', '')
        rec = parse_record(failed_record(gw, dsn))
        self.assertEqual(rec['from'], '<>')
        self.assertEqual(rec.get('dsn'), 'none null-sender')
        self.assertEqual(gw.listdir('queue'), [])
        self.assertEqual(gw.all_files('mail'), [])

    def test_expired_gets_report(self):
        """max_queue_lifetime runs out while the sink answers 451: one report, Status 5.4.7, the last host's reply"""
        self.sink.rcpt_rules['slow@example.net'] = '451 4.3.0 try again later'
        gw = self.gateway('bounce-expired', max_queue_lifetime=2)
        msgid = submit(gw, 'gina@localhost', ['slow@example.net'], token())
        text = failed_record(gw, msgid, timeout=20)
        self.assertIn('554 5.4.7 Delivery time expired', text)
        self.assertRegex(text, r'\nrcpt-at: \d+ 127\.0\.0\.1:%d\n' % self.sink.port)
        box = wait_until(lambda: gw.mailbox_new('gina'), 10, 'a report in mail/gina/new')
        self.assertEqual(len(box), 1)
        msg, human, status, _ = report_parts(gw.read_mail('gina', box[0]))
        self.assertIn('Action: failed', status)
        self.assertIn('Status: 5.4.7', status)
        self.assertIn('Remote-MTA: dns; 127.0.0.1', status)
        self.assertIn('last reply: 451 4.3.0 try again later', ' '.join(status.split('\n ')))

    def test_delay_warning_once(self):
        """delay_warning_time = 1 and a sink that answers 451: one Action: delayed report"""
        self.sink.rcpt_rules['slow@example.net'] = '451 4.3.0 try again later'
        gw = self.gateway('bounce-delay', delay_warning_time=1)
        msgid = submit(gw, 'frank@localhost', ['slow@example.net'], token())

        def attempts():
            where, text = gw.find_record(msgid)
            return int(parse_record(text).get('attempts', 0)) if text else 0
        wait_until(lambda: attempts() >= 4, 30, 'four attempts of %s' % msgid)
        box = gw.mailbox_new('frank')
        self.assertEqual(len(box), 1, box)
        msg, human, status, _ = report_parts(gw.read_mail('frank', box[0]))
        self.assertIn('Action: delayed', status)
        self.assertIn('Status: 4.3.0', status)
        self.assertIn('Final-Recipient: rfc822; slow@example.net', status)
        self.assertIn('Will-Retry-Until: ', status)
        self.assertIn('warning only', human)
        self.assertEqual(msg['Subject'], 'Delayed Mail (still being retried)')
        where, text = gw.find_record(msgid)
        self.assertRegex(parse_record(text).get('dsn-delayed', ''), r'^\d', text)
        self.assertNotIn('dsn: ', text)
        self.assertEqual(gw.read_log('smtpd').count('kind=delayed via=mailbox'), 1)


if __name__ == '__main__':
    harness.main()
