#!/usr/bin/python3
"""test_checkpoint - RFC 1845 CHECKPOINT: a broken DATA taken up again.

checkpoint_client.py speaks the extension (no Debian client does).  The
message is 3 MiB; checkpoint_interval is 256 KiB.  A transfer broken in
the middle and finished in a new session (355 <offset>) must be stored
byte for byte as the same message sent in one go (sha256), also after a
second break and after smtpd was killed with SIGKILL between the two
sessions.  Another client's TRANSID, another envelope under the same
TRANSID, and an expired transfer start anew (354).
"""

import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import queued_id, split_stored, wait_until
from checkpoint_client import CheckpointClient, wire_stream

INTERVAL = 256 * 1024


def big_message(tag):
    lines = [b'From: alice@example.org', b'To: bob@localhost', b'Subject: checkpoint ' + tag, b'']
    for i in range(40000):		# ~3 MiB, with lines that need dot-stuffing
        lines.append(b'%s line %06d %s' % (b'.' if i % 7 == 0 else b'', i, b'x' * 60))
    return b'\r\n'.join(lines) + b'\r\n'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Checkpoint(unittest.TestCase):

    msg = big_message(b'one')
    stream = wire_stream(msg)

    def setUp(self):
        """A gateway of its own per test (partial/ starts empty), and the reference:
        the same message in one go, without TRANSID."""
        self.gw = harness.Instance('checkpoint', checkpoint_interval=INTERVAL)
        self.addCleanup(self.gw.cleanup)
        self.gw.start_smtpd()
        c = CheckpointClient(self.gw.smtp_addr)
        c.cmd('EHLO client.example')
        c.cmd('MAIL FROM:<alice@example.org>')
        c.cmd('RCPT TO:<bob@localhost>')
        self.assertEqual(c.cmd('DATA')[0], 354)
        code, text = c.send(self.stream, 0)
        self.assertEqual(code, 250, text)
        c.quit()
        self.reference = self.content(queued_id(text[0]))
        self.assertEqual(self.partial(), [], 'no partial transfer without TRANSID')

    def content(self, msgid):
        name = wait_until(lambda: self.gw.find_mail('bob', msgid), 5, 'message %s' % msgid)
        return split_stored(self.gw.read_mail('bob', name))[2]

    def partial(self):
        return sorted(self.gw.listdir('partial'))

    def checkpoints_logged(self, start):
        return self.gw.read_log('smtpd', start).count('event=checkpoint ')

    def break_after(self, transid, octets, source=None, rcpts=('bob@localhost',)):
        """A transfer that breaks after octets of the stream; waits for its checkpoints."""
        start = len(self.gw.read_log('smtpd'))
        c = CheckpointClient(self.gw.smtp_addr, source=source)
        offset = c.begin('alice@example.org', list(rcpts), transid)
        self.assertIsNone(c.send(self.stream, offset, octets - offset))
        want = (octets - offset) // INTERVAL
        wait_until(lambda: self.checkpoints_logged(start) >= want, 10, '%d checkpoints' % want)
        c.abort()
        wait_until(lambda: 'checkpoint=kept' in self.gw.read_log('smtpd', start), 5, 'the session to end')
        return offset

    def resume(self, transid, source=None):
        c = CheckpointClient(self.gw.smtp_addr, source=source)
        offset = c.begin('alice@example.org', ['bob@localhost'], transid)
        code, text = c.send(self.stream, offset)
        c.quit()
        self.assertEqual(code, 250, text)
        self.assertTrue(text[0].startswith('2.0.0 '), text)
        return offset, self.content(queued_id(text[0]))

    def test_ehlo_offers_checkpoint(self):
        """EHLO announces CHECKPOINT; a malformed TRANSID is 501 5.5.4"""
        c = CheckpointClient(self.gw.smtp_addr)
        self.addCleanup(c.abort)
        code, lines = c.cmd('EHLO client.example')
        self.assertIn('CHECKPOINT', lines)
        for bad in ('TRANSID=abc', 'TRANSID=<nohost>', 'TRANSID=<a@b@c>', 'TRANSID=<>', 'TRANSID'):
            code, text = c.cmd('MAIL FROM:<alice@example.org> ' + bad)
            self.assertEqual((code, text[0][:5]), (501, '5.5.4'), bad)

    def test_355_transaction_offset(self):
        """broken at 1.3 MiB: 355 <offset> at a checkpoint, the rest sent, stored byte for byte as one-shot"""
        self.break_after('<t1@client.example>', 1300000)
        self.assertEqual(len(self.partial()), 2, self.partial())	# the record and its data
        offset, got = self.resume('<t1@client.example>')
        self.assertGreaterEqual(offset, 4 * INTERVAL)
        self.assertLessEqual(offset, 1300000)
        self.assertEqual(self.stream[offset - 2:offset], b'\r\n', 'the offset is at a line start')
        self.assertEqual(sha(got), sha(self.reference))
        self.assertEqual(self.partial(), [], 'the partial transfer is removed once the message is stored')

    def test_twice_broken_and_smtpd_killed(self):
        """broken twice, smtpd killed with SIGKILL and restarted in between: still byte for byte"""
        self.break_after('<t2@client.example>', 700000)
        first = self.break_after('<t2@client.example>', 2000000)
        self.assertGreater(first, 0, 'the second session did not resume')
        self.gw.kill('smtpd')
        self.gw.start_smtpd()
        offset, got = self.resume('<t2@client.example>')
        self.assertGreater(offset, first)
        self.assertEqual(sha(got), sha(self.reference))
        self.assertEqual(self.partial(), [])

    def test_other_client_and_other_envelope_start_anew(self):
        """the same TRANSID from 127.0.0.2 or with other recipients: 354, a new transfer"""
        self.break_after('<t3@client.example>', 600000)
        kept = self.partial()
        c = CheckpointClient(self.gw.smtp_addr, source='127.0.0.2')
        self.assertEqual(c.begin('alice@example.org', ['bob@localhost'], '<t3@client.example>'), 0)
        c.abort()
        self.assertEqual(self.partial()[:len(kept)], kept, 'another client touched the partial transfer')
        c = CheckpointClient(self.gw.smtp_addr)
        self.assertEqual(c.begin('alice@example.org', ['bob@localhost', 'carol@localhost'],
                                 '<t3@client.example>'), 0)
        c.abort()
        wait_until(lambda: 'checkpoint-removed' in self.gw.read_log('smtpd'), 5, 'checkpoint-removed')
        self.assertFalse(set(kept) & set(self.partial()), 'the old partial transfer was kept')


class AuthenticatedClients(unittest.TestCase):

    def test_transid_belongs_to_the_user(self):
        """after AUTH the key is the user: bob's and an anonymous client's same TRANSID get 354, alice's 355"""
        from test_auth import make_users
        users = {'alice@example.org': ('alice pass', []), 'bob@example.org': ('bob pass', [])}
        gw = harness.Instance('checkpoint-auth', checkpoint_interval=INTERVAL, auth='offer',
                              **{'smtpd.auth_plaintext': True})
        self.addCleanup(gw.cleanup)
        gw.cfg['auth_users'] = os.path.join(gw.dir, 'users')
        make_users(gw.cfg['auth_users'], gw.cfg.get('user'), users)
        gw.write_config()
        gw.start_smtpd()
        stream = wire_stream(big_message(b'auth'))
        alice = ('alice@example.org', 'alice pass')
        c = CheckpointClient(gw.smtp_addr)
        self.assertEqual(c.begin('alice@example.org', ['bob@localhost'], '<t5@client.example>', alice), 0)
        c.send(stream, 0, 600000)
        wait_until(lambda: gw.read_log('smtpd').count('event=checkpoint ') >= 2, 10, 'two checkpoints')
        c.abort()
        wait_until(lambda: 'checkpoint=kept' in gw.read_log('smtpd'), 5, 'the session to end')
        for who in (('bob@example.org', 'bob pass'), None):		# same address, another identity
            c = CheckpointClient(gw.smtp_addr)
            self.assertEqual(c.begin('alice@example.org', ['bob@localhost'], '<t5@client.example>', who), 0,
                             'the TRANSID of alice was honoured for %r' % (who,))
            c.abort()
        c = CheckpointClient(gw.smtp_addr)
        offset = c.begin('alice@example.org', ['bob@localhost'], '<t5@client.example>', alice)
        self.assertGreater(offset, 0)
        code, text = c.send(stream, offset)
        c.quit()
        self.assertEqual(code, 250, text)


class Expiry(unittest.TestCase):

    def test_stale_partial_transfer_expires(self):
        """checkpoint_lifetime = 2: after 3 s the transfer is removed and DATA answers 354"""
        gw = harness.Instance('checkpoint-expiry', checkpoint_interval=INTERVAL, checkpoint_lifetime=2)
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        stream = wire_stream(big_message(b'two'))
        c = CheckpointClient(gw.smtp_addr)
        self.assertEqual(c.begin('alice@example.org', ['bob@localhost'], '<t4@client.example>'), 0)
        c.send(stream, 0, 600000)
        wait_until(lambda: 'event=checkpoint ' in gw.read_log('smtpd'), 10, 'a checkpoint')
        c.abort()
        wait_until(lambda: len(gw.listdir('partial')) == 2, 5, 'the partial transfer')
        time.sleep(3)
        c = CheckpointClient(gw.smtp_addr)
        self.assertEqual(c.begin('alice@example.org', ['bob@localhost'], '<t4@client.example>'), 0)
        c.abort()
        self.assertIn('event=checkpoint-expired count=1', gw.read_log('smtpd'))
        self.assertEqual(gw.listdir('partial'), [])


if __name__ == '__main__':
    harness.main()
