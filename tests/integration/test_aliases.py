#!/usr/bin/python3
"""test_aliases - the [aliases] table over SMTP, outbox/ and sendmail; spoolgate-newaliases.

One gateway whose smarthost is an aiosmtpd sink in this process (remote
alias targets must arrive there) and whose [aliases] file holds Debian's
default line, a list with continuation lines, an :include:, a |command
and a /file target, an alias that lists itself and one too big for
max_recipients:
- SMTP RCPT root@localhost: the message lands in mail/admin (the alias's
  local target), not in mail/root, and ops@example.net gets it at the
  sink; event=alias-expanded says root -> admin, ops@example.net;
- <Postmaster> (Debian's postmaster: root) follows root;
- a list (continuation lines) and an :include: file;
- |command and /file targets: refused, logged with the file:line of the
  target (event=alias-target-refused), the alias's other target still
  gets the message; an alias of nothing but a command is 550 5.1.1;
- an alias that lists itself keeps a copy in its own mailbox;
- with mailboxes = a list, a local target that is no mailbox is skipped
  and logged; an alias of only such targets is 550 5.1.1;
- expansion over max_recipients: 452 4.5.3, and the transaction goes on;
- cron's way: `echo x | spoolgate-sendmail root` (run as root, as cron's
  root jobs do): mail/admin and the sink;
- outbox/ (the mount): `To: root@localhost` expanded the same way;
- spoolgate-newaliases: a broken file exits 65 naming file:line, the
  daemon logs aliases-reload-failed and keeps expanding with the old
  table; after a fix, exit 0 and the new table is used without restart.
"""

import os
import re
import smtplib
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, wait_until
from test_relay import start_sink_for

EX_DATAERR = 65


def token():
    return uuid.uuid4().hex[:12]


def write(path, text, mode=0o644):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def table(gw):
    """The aliases file of the tests; returns {name: line number}."""
    include = os.path.join(gw.dir, 'list.txt')
    write(include, '# people of the list\nerin\nfrank@example.net\n')
    big = ', '.join('u%d' % i for i in range(120))
    lines = [
        '# See man 5 aliases for format',
        'postmaster:    root',
        'root: admin, ops@example.net',
        'staff: alice, bob,',
        '   carol@example.net',
        'list: :include:%s' % include,
        'logger: "|/usr/bin/logger -t spoolgate", /tmp/spoolgate-alias-file,',
        '        dave',
        'onlycmd: |/bin/true',
        'self: self, self@example.net',
        'big: %s' % big,
    ]
    path = os.path.join(gw.dir, 'aliases')
    write(path, '\n'.join(lines) + '\n')
    return path, {l.split(':', 1)[0]: i + 1 for i, l in enumerate(lines) if not l.startswith((' ', '#'))}


def smtp_send(gw, rcpts, tok):
    msg = ('From: alice@example.org\nTo: %s\nSubject: alias %s\n\nbody %s\n'
           % (', '.join(rcpts), tok, tok))
    with smtplib.SMTP(*gw.smtp_addr, timeout=10) as s:
        return s.sendmail('alice@example.org', rcpts, msg)


def mail_with(gw, box, tok, timeout=10):
    def find():
        for name in gw.mailbox_new(box):
            if tok.encode() in gw.read_mail(box, name):
                return gw.read_mail(box, name)
        return None
    return wait_until(find, timeout, '%s in mail/%s' % (tok, box))


def in_box(gw, box, tok):
    return any(tok.encode() in gw.read_mail(box, n) for n in gw.mailbox_new(box))


class AliasesBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_sink_for(cls)
        cls.gw = harness.Instance('aliases', smarthost='127.0.0.1:%d' % cls.sink.port,
                                  scan_interval=300, retry_min=1, retry_max=2, hostname='gw.test',
                                  sender_domain='localhost', trusted_users='root')
        cls.addClassCleanup(cls.gw.cleanup)
        cls.aliases, cls.line = table(cls.gw)
        cls.gw.cfg['aliases.file'] = cls.aliases
        cls.gw.write_config()
        cls.gw.start_smtpd()

    def at_sink(self, tok, rcpt):
        got = wait_until(lambda: [m for m in self.sink.find(tok) if rcpt in m['rcpt']], 10,
                         '%s for %s at the sink' % (tok, rcpt))
        self.assertEqual(len(got), 1)
        return got[0]


class OverSMTP(AliasesBase):

    def test_root_local_and_remote(self):
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['root@localhost'], tok), {})
        data = mail_with(self.gw, 'admin', tok)
        self.assertTrue(data.startswith(b'Return-Path: <alice@example.org>'), data[:100])
        m = self.at_sink(tok, 'ops@example.net')
        self.assertEqual(m['rcpt'], ['ops@example.net'])
        self.assertFalse(in_box(self.gw, 'root', tok), 'root is an alias: no copy in mail/root')
        self.assertRegex(self.gw.read_log('smtpd'),
                         r'event=alias-expanded session=\d+ rcpt=root@localhost alias=root n=2 '
                         r'to="root -> admin, ops@example.net"')
        log('root@localhost: mail/admin and ops@example.net at the sink, logged')

    def test_postmaster_debian_line(self):
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['Postmaster'], tok), {})
        mail_with(self.gw, 'admin', tok)
        self.at_sink(tok, 'ops@example.net')
        log('<Postmaster> -> root -> admin, ops@example.net (Debian\'s "postmaster: root")')

    def test_list_with_continuation(self):
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['staff@localhost'], tok), {})
        mail_with(self.gw, 'alice', tok)
        mail_with(self.gw, 'bob', tok)
        self.at_sink(tok, 'carol@example.net')

    def test_include(self):
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['list@localhost'], tok), {})
        mail_with(self.gw, 'erin', tok)
        self.at_sink(tok, 'frank@example.net')

    def test_command_and_file_refused(self):
        tok = token()
        start = len(self.gw.read_log('smtpd'))
        self.assertEqual(smtp_send(self.gw, ['logger@localhost'], tok), {})
        mail_with(self.gw, 'dave', tok)
        text = self.gw.read_log('smtpd')[start:]
        n = self.line['logger']
        self.assertRegex(text, r'event=alias-target-refused session=\d+ rcpt=logger@localhost alias=logger '
                         r'target="%s:%d: \|/usr/bin/logger -t spoolgate: command targets are not delivered'
                         % (re.escape(self.aliases), n))
        self.assertRegex(text, r'target="%s:%d: /tmp/spoolgate-alias-file: file targets are not delivered'
                         % (re.escape(self.aliases), n))
        self.assertFalse(os.path.exists('/tmp/spoolgate-alias-file'))
        with harness.RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            harness.assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250)
            r = c.cmd('RCPT TO:<onlycmd@localhost>')
            harness.assert_reply(self, r, 550, '5.1.1')
            self.assertIn('no deliverable target', r.text)
        log('|command and /file refused at %s:%d, dave still got it; a command-only alias is 550 5.1.1'
            % (self.aliases, n))

    def test_self_listed(self):
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['self@localhost'], tok), {})
        mail_with(self.gw, 'self', tok)
        self.at_sink(tok, 'self@example.net')

    def test_over_max_recipients(self):
        with harness.RawSMTP(self.gw.smtp_addr) as c:
            c.ehlo()
            harness.assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250)
            r = c.cmd('RCPT TO:<big@localhost>')
            harness.assert_reply(self, r, 452, '4.5.3')
            self.assertIn('expands to more than 100 recipients', r.text)
            harness.assert_reply(self, c.cmd('RCPT TO:<bob@localhost>'), 250)
            harness.assert_reply(self, c.cmd('QUIT'), 221)
        self.assertRegex(self.gw.read_log('smtpd'), r'event=alias-failed session=\d+ rcpt=big@localhost '
                         r'alias=big error=E2BIG')


class SendmailAndOutbox(AliasesBase):

    def test_cron_sendmail_root(self):
        tok = token()
        r = subprocess.run([harness.SENDMAIL, 'root'], input=('disk full %s\n' % tok).encode(),
                           env=dict(os.environ, SPOOLGATE_CONF=self.gw.conf), capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = mail_with(self.gw, 'admin', tok)
        self.assertIn(b'Received: by gw.test (spoolgate, from sendmail)', data)
        self.assertTrue(data.startswith(b'Return-Path: <root@localhost>'), data[:100])
        self.at_sink(tok, 'ops@example.net')
        self.assertFalse(in_box(self.gw, 'root', tok))
        self.assertRegex(self.gw.read_log('smtpd'), r'event=alias-expanded id=\S+ rcpt=root@localhost alias=root')
        log('echo | sendmail root: mail/admin directly, ops@example.net through the relay')

    def test_outbox_to_root(self):
        why = harness.fuse_available()
        if why:
            self.skipTest(why)
        if not harness.is_mounted(self.gw.mnt):
            self.gw.start_fs()
        tok = token()
        with open(os.path.join(self.gw.mnt, 'outbox', 'to-root.eml'), 'w') as f:
            f.write('From: backup@localhost\nTo: root@localhost\nSubject: nightly %s\n\nall good %s\n'
                    % (tok, tok))
        data = mail_with(self.gw, 'admin', tok)
        self.assertTrue(data.startswith(b'Return-Path: <backup@localhost>\n'), data[:100])
        m = self.at_sink(tok, 'ops@example.net')
        self.assertNotIn(b'Return-Path:', m['data'], 'the relayed copy starts after Return-Path (data-offset)')
        self.assertFalse(in_box(self.gw, 'root', tok))
        self.assertRegex(self.gw.read_log('fs'), r'event=aliases-loaded file=\S+ aliases=8 when=start')
        self.assertRegex(self.gw.read_log('fs'), r'event=alias-expanded id=\S+ rcpt=root@localhost alias=root')
        log('outbox/ To: root@localhost: expanded by spoolgate-fs with the same table')


class KnownMailboxes(unittest.TestCase):
    """mailboxes = a list: an alias's local target that is no known mailbox is skipped and logged."""

    def test_unknown_local_target(self):
        gw = harness.Instance('aliases-boxes', mailboxes='admin')
        self.addCleanup(gw.cleanup)
        path = os.path.join(gw.dir, 'aliases')
        write(path, 'root: admin, nosuchbox\nghost: nosuchbox\n')
        gw.cfg['aliases.file'] = path
        gw.write_config()
        gw.start_smtpd()
        tok = token()
        self.assertEqual(smtp_send(gw, ['root@localhost'], tok), {})
        mail_with(gw, 'admin', tok)
        self.assertRegex(gw.read_log('smtpd'), r'event=alias-target-refused session=\d+ rcpt=root@localhost '
                         r'target=nosuchbox why="no such mailbox"')
        with harness.RawSMTP(gw.smtp_addr) as c:
            c.ehlo()
            harness.assert_reply(self, c.cmd('MAIL FROM:<alice@example.org>'), 250)
            harness.assert_reply(self, c.cmd('RCPT TO:<ghost@localhost>'), 550, '5.1.1')


class Newaliases(AliasesBase):

    def newaliases(self):
        return subprocess.run([harness.NEWALIASES, '-c', self.gw.conf], capture_output=True, text=True,
                              timeout=30)

    def test_broken_then_fixed(self):
        r = self.newaliases()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('%s: 8 aliases' % self.aliases, r.stdout)
        self.assertIn('%s:%d: alias logger: |/usr/bin/logger' % (self.aliases, self.line['logger']), r.stderr)

        with open(self.aliases) as f:
            good = f.read()
        start = len(self.gw.read_log('smtpd'))
        write(self.aliases, 'root: fixed\n# a comment\nthis line has no colon\n')
        r = self.newaliases()
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        self.assertIn('%s:3: no \':\' after the alias name' % self.aliases, r.stderr)
        time.sleep(1.2)		# the daemon looks at the file at most once a second
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['root@localhost'], tok), {})
        mail_with(self.gw, 'admin', tok)		# the old table
        self.assertFalse(in_box(self.gw, 'fixed', tok) if os.path.isdir(self.gw.path('mail', 'fixed')) else False)
        self.assertRegex(self.gw.read_log('smtpd')[start:],
                         r'event=aliases-reload-failed file=\S+ error="%s:3: no \':\' after the alias name" '
                         r'action="keeping the aliases loaded before"' % re.escape(self.aliases))
        log('broken file: newaliases exit 65 with file:3, the daemon kept the old table')

        write(self.aliases, good.replace('root: admin, ops@example.net', 'root: newadmin'))
        r = self.newaliases()
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(1.2)
        tok = token()
        self.assertEqual(smtp_send(self.gw, ['root@localhost'], tok), {})
        mail_with(self.gw, 'newadmin', tok)
        self.assertFalse(in_box(self.gw, 'admin', tok))
        self.assertRegex(self.gw.read_log('smtpd')[start:], r'event=aliases-loaded file=\S+ aliases=8 when=reload')
        log('fixed file: newaliases exit 0, root -> newadmin without a restart')

    def test_smtpd_refuses_to_start_with_a_broken_table(self):
        path = os.path.join(self.gw.dir, 'broken-aliases')
        write(path, 'ok: a\n\n  \nbad line\n')
        conf = self.gw.conf + '.broken'
        with open(self.gw.conf) as f:
            text = f.read()
        with open(conf, 'w') as f:
            f.write(text.replace('file = %s' % self.aliases, 'file = %s' % path))
        r = subprocess.run([harness.SMTPD, '-c', conf, '-n'], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn('%s:4: no \':\' after the alias name' % path, r.stderr)


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS, harness.SENDMAIL, harness.NEWALIASES))
