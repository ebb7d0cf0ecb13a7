#!/usr/bin/python3
"""test_sendmail - spoolgate-sendmail, the gateway's pickup of drop/, spoolgate-mailq.

A copy of the built spoolgate-sendmail is made set-group-id [sendmail]
group (as a package installs it) in the instance's directory, and a user
of the test's own (useradd, always removed: userdel at the end) runs it
through su, as cron and mail(1) do on a server.  No mount: spoolgate-fs
never runs here, and nothing needs it.
- cron's way: `echo output | sendmail -t -FCronDaemon -i -B8BITMIME -oem`
  with `To: root` lands in mail/root (relayed through the gateway's own
  listener), with Received: "from sendmail ... (uid N)", the user's
  From:, Return-Path and envelope origin "sendmail uid=N";
- `mail -s subject root` (bsd-mailx, pointed at the copy by MAILRC);
- `sendmail -bs` driven by smtplib over a socketpair: EHLO, MAIL (an
  untrusted MAIL FROM replaced by the user's address), RCPT, DATA with a
  dot-stuffed line, RSET, NOOP, QUIT; a message that fails the checks
  gets the table's reply;
- each refusal: exit status (sysexits.h) and "sendmail: <reply>" on
  stderr, nothing left in drop/; a spool on a full tmpfs is EX_TEMPFAIL;
  a copy without the set-group-id bit is EX_CANTCREAT;
- -f: ignored with a warning for the user, taken from root;
- smtpd stopped: sendmail exits 0, the drop waits in drop/, and the next
  start queues and delivers it;
- forged drops written into drop/ by root: garbage, a symlink to
  /etc/shadow, a FIFO, a file claiming uid 0, a sender the owner may not use:
  each to failed/ with a rejected: line, logged, removed from drop/;
- spoolgate-mailq (and sendmail -bp): the table and -v of a deferred message, refused to
  the user, --flush makes the runner try it now; a --flush made while
  smtpd is stopped says so (EX_UNAVAILABLE) and is taken at the start.
"""

import os
import pwd
import re
import shutil
import smtplib
import socket
import stat
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, parse_record, wait_until

TEST_USER = 'sgsendmail'
GROUP = 'spoolgate-drop'
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 64, 65, 67, 69
EX_CANTCREAT, EX_TEMPFAIL, EX_NOPERM = 73, 75, 77


def token():
    return uuid.uuid4().hex[:12]


def ensure_group():
    harness.ensure_group(GROUP)


def install_sendmail(gw, setgid=True):
    """A copy of spoolgate-sendmail in the instance, root:GROUP rwxr-sr-x (or without the bit)."""
    return harness.install_sendmail(gw, GROUP, setgid)


def as_user(cmd, data=b'', env=None, timeout=30):
    """Run a shell command as TEST_USER (su, as cron does), stdin = data."""
    return harness.run_as(TEST_USER, cmd, data, env, timeout)


def mail_with(gw, box, tok, timeout=15):
    """The stored message in mail/<box>/new that holds tok."""
    def find():
        for name in gw.mailbox_new(box):
            data = gw.read_mail(box, name)
            if tok.encode() in data:
                return data
        return None
    return wait_until(find, timeout, '%s in mail/%s' % (tok, box))


def record_with(gw, tok, dirs=('queue', 'sent', 'failed', 'active'), timeout=15):
    """(dir, record text, data) of the message whose data holds tok."""
    def find():
        for d in dirs:
            for name in gw.listdir(d):
                msgid = name.split('@', 1)[0]
                try:
                    with open(gw.path('data', msgid), 'rb') as f:
                        data = f.read()
                    with open(gw.path(d, name), errors='replace') as f:
                        text = f.read()
                except FileNotFoundError:
                    continue
                if tok.encode() in data:
                    return d, text, data
        return None
    return wait_until(find, timeout, 'a record for %s' % tok)


class SendmailBase(unittest.TestCase):
    gw = None

    @classmethod
    def setUpClass(cls):
        if not harness.IS_ROOT:
            raise unittest.SkipTest('needs root: set-group-id copies, useradd, su')
        ensure_group()
        cls.pw = harness.add_user(TEST_USER)
        cls.addClassCleanup(harness.remove_user, TEST_USER)
        cls.gw = cls.make_instance()
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.sendmail = install_sendmail(cls.gw)
        cls.env = {'SPOOLGATE_CONF': cls.gw.conf}

    @classmethod
    def make_instance(cls):
        gw = harness.Instance('sendmail', hostname='gw.test', sender_domain='localhost',
                              trusted_users='root', group=GROUP, max_message_size=65536)
        gw.cfg['smarthost'] = '127.0.0.1:%d' % gw.port	# the gateway's own listener: mail/<box>
        return gw

    def sendmail_as_user(self, args, data, env=None):
        e = dict(self.env, **(env or {}))
        return as_user('%s %s' % (self.sendmail, args), data, e)

    def drops(self):
        return self.gw.listdir('drop')


class Clients(SendmailBase):
    """Real clients: cron's pipe, mail(1), smtplib over -bs."""

    def test_cron_pipe_to_root(self):
        tok = token()
        msg = ('To: root\nSubject: Cron <%s@gw> backup %s\n\noutput %s\n' % (TEST_USER, tok, tok)).encode()
        r = self.sendmail_as_user('-FCronDaemon -i -B8BITMIME -oem -t', msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = mail_with(self.gw, 'root', tok)
        uid = self.pw.pw_uid
        self.assertTrue(data.startswith(b'Return-Path: <%s@localhost>' % TEST_USER.encode()), data[:200])
        self.assertIn(b'Received: by gw.test (spoolgate, from sendmail)', data)
        self.assertIn(b'(uid %d, user %s);' % (uid, TEST_USER.encode()), data)
        self.assertIn(b'From: CronDaemon <%s@localhost>' % TEST_USER.encode(), data)
        self.assertRegex(data, rb'\nDate: ')
        self.assertRegex(data, rb'\nMessage-ID: <')
        where, text, _ = record_with(self.gw, tok, dirs=('sent',))
        rec = parse_record(text)
        self.assertEqual(rec['origin'], 'sendmail uid=%d user=%s' % (uid, TEST_USER))
        self.assertEqual(rec['from'], '<%s@localhost>' % TEST_USER)
        self.assertEqual([a for _, a, _ in rec['rcpt']], ['root@localhost'])
        self.assertRegex(self.gw.read_log('smtpd'), r'event=pickup-queued id=\S+ drop=\S+ uid=%d user=%s'
                         % (uid, TEST_USER))
        self.assertEqual(self.drops(), [])
        log('cron: exit 0, mail/root has it with Received (uid %d), From: CronDaemon, origin sendmail' % uid)

    def test_headerless_text_and_arguments(self):
        """echo text | sendmail root: the text is the body, headers are the gateway's."""
        tok = token()
        r = self.sendmail_as_user('root', ('disk full %s\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        data = mail_with(self.gw, 'root', tok)
        head, _, body = data.partition(b'\n\n')
        self.assertIn(b'From: %s@localhost' % TEST_USER.encode(), head)
        self.assertEqual(body, b'disk full %s\n' % tok.encode())

    def test_dot_line(self):
        """Without -i a line holding only "." ends the message (CRLF too); with -i it is text."""
        tok = token()
        r = self.sendmail_as_user('root', ('Subject: dot %s\r\n\r\nbefore\r\n.\r\nafter\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(mail_with(self.gw, 'root', tok).endswith(b'\n\nbefore\n'))
        tok = token()
        r = self.sendmail_as_user('-i root', ('Subject: dot %s\n\nbefore\n.\nafter\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(mail_with(self.gw, 'root', tok).endswith(b'\n\nbefore\n.\nafter\n'))

    def test_mail_s_subject_root(self):
        mailx = shutil.which('bsd-mailx') or shutil.which('mail')
        if mailx is None:
            self.skipTest('bsd-mailx is not installed (scripts/deps.sh installs it)')
        tok = token()
        rc = os.path.join(self.gw.dir, 'mailrc')
        with open(rc, 'w') as f:
            f.write('set sendmail=%s\n' % self.sendmail)
        os.chmod(rc, 0o644)
        r = as_user('%s -s "nightly %s" root' % (mailx, tok), ('all good %s\n' % tok).encode(),
                    dict(self.env, MAILRC=rc))
        self.assertEqual(r.returncode, 0, r.stderr)
        data = mail_with(self.gw, 'root', tok)
        self.assertIn(b'Subject: nightly %s' % tok.encode(), data)
        self.assertIn(b'all good %s' % tok.encode(), data)
        self.assertIn(b'(uid %d, user %s);' % (self.pw.pw_uid, TEST_USER.encode()), data)
        log('mail -s: %s delivered it through spoolgate-sendmail' % os.path.basename(mailx))

    def bs_session(self):
        """smtplib on one end of a socketpair, sendmail -bs (as the user) on the other."""
        ours, theirs = socket.socketpair()
        cmd = 'SPOOLGATE_CONF=%s %s -bs' % (self.gw.conf, self.sendmail)
        proc = subprocess.Popen(['su', '-s', '/bin/sh', TEST_USER, '-c', cmd], stdin=theirs, stdout=theirs,
                                stderr=subprocess.PIPE)
        theirs.close()
        ours.settimeout(30)
        s = smtplib.SMTP()
        s.sock = ours
        code, greeting = s.getreply()
        self.assertEqual(code, 220, greeting)
        self.addCleanup(lambda: proc.wait(timeout=30))
        return s, proc, greeting

    def test_bs_with_smtplib(self):
        tok = token()
        s, proc, greeting = self.bs_session()
        self.assertIn(b'sendmail -bs, uid %d' % self.pw.pw_uid, greeting)
        code, text = s.ehlo('client.example')
        self.assertEqual(code, 250)
        self.assertIn(b'ENHANCEDSTATUSCODES', text)
        self.assertEqual(s.noop()[0], 250)
        self.assertEqual(s.rset()[0], 250)
        # Extensions of the server's parser that -bs does not offer (its EHLO has none of them).
        for param in ('BODY=BINARYMIME', 'SMTPUTF8', 'TRANSID=<1@client.example>'):
            self.assertNotIn(param.split('=')[0].encode(), text)
            code, why = s.docmd('MAIL FROM:<x@y.example> ' + param)
            self.assertEqual((code, why[:5]), (555, b'5.5.4'), param)
        code, text = s.mail('someone@else.example')
        self.assertEqual(code, 250)
        self.assertIn(b'<%s@localhost>' % TEST_USER.encode(), text)	# replaced: not trusted
        self.assertIn(b'replaced', text)
        self.assertEqual(s.rcpt('root@localhost')[0], 250)
        self.assertEqual(s.rcpt('<bad@@x>')[0], 553)
        body = ('From: <%s@localhost>\r\nTo: root@localhost\r\nSubject: bs %s\r\n\r\n'
                '.leading dot\r\nlast %s\r\n' % (TEST_USER, tok, tok))
        code, text = s.data(body.encode())		# smtplib dot-stuffs ".leading dot"
        self.assertEqual(code, 250, text)
        self.assertIn(b'drop/', text)
        # A second message in the same session: no recipient is 554 5.5.1 at DATA.
        self.assertEqual(s.mail('<>')[0], 250)
        code, text = s.docmd('DATA')
        self.assertEqual(code, 554, text)
        self.assertEqual(s.rset()[0], 250)
        # One that fails the checks: a NUL in the header is the table's 554 5.6.0.
        s.mail('x@y.example')
        s.rcpt('root@localhost')
        code, text = s.data(b'Subject: a\x00b\r\n\r\nbody\r\n')
        self.assertEqual(code, 554, text)
        self.assertIn(b'5.6.0', text)
        self.assertEqual(s.quit()[0], 221)
        self.assertEqual(proc.wait(timeout=30), 0)
        data = mail_with(self.gw, 'root', tok)
        self.assertIn(b'\n.leading dot\n', data)
        self.assertTrue(data.startswith(b'Return-Path: <%s@localhost>' % TEST_USER.encode()), data[:100])
        self.assertEqual(self.drops(), [])
        log('-bs: smtplib sent one message (dot unstuffed, MAIL FROM replaced), 554 for the bad ones')


class Refusals(SendmailBase):
    """Each refusal: the sysexits.h status, the table's reply on stderr, nothing in drop/."""

    def refuse(self, args, data, status, reply, why=None):
        # Drops of earlier tests (root's, another class's) may still be on their
        # way through the gateway's pickup: wait for drop/ to be empty, so that
        # anything in it afterwards can only be this refusal's.
        harness.wait_until(lambda: self.drops() == [], 15, 'drop/ empty before the refusal')
        start = len(self.gw.read_log('smtpd'))
        r = self.sendmail_as_user(args, data)
        err = r.stderr.decode(errors='replace')
        self.assertEqual(r.returncode, status, err)
        self.assertRegex(err, r'^sendmail: %s' % re.escape(reply))
        if why:
            self.assertIn(why, err)
        self.assertEqual(self.drops(), [])
        # Nothing of the test user's reached the pickup either.
        self.assertNotRegex(self.gw.read_log('smtpd')[start:], r'event=pickup-\w+ [^\n]*uid=%d ' % self.pw.pw_uid)
        log('refused %-40r -> exit %d, %s' % (args, status, err.strip()[:100]))

    def test_no_recipient(self):
        self.refuse('', b'Subject: x\n\nbody\n', EX_USAGE, '554 5.5.1 No valid recipients')
        self.refuse('-t', b'Subject: x\n\nbody\n', EX_USAGE, '554 5.5.1 No valid recipients',
                    'no address in To:, Cc: or Bcc:')

    def test_bad_address(self):
        self.refuse('"a@@b"', b'Subject: x\n\nbody\n', EX_NOUSER, '553 5.1.3')
        self.refuse('-t', b'To: <bad@@example.org>\nSubject: x\n\nbody\n', EX_NOUSER, '553 5.1.3', 'To:')

    def test_not_a_message(self):
        self.refuse('root', b'Subject: a\x00b\n\nbody\n', EX_DATAERR, '554 5.6.0', 'NUL')

    def test_too_big(self):
        data = b'Subject: big\n\n' + b'x' * 79 + b'\n'
        data = data * (self.gw.cfg['max_message_size'] // len(data) + 2)
        self.refuse('root', data, EX_DATAERR, '552 5.3.4')

    def test_bad_option(self):
        r = self.sendmail_as_user('-Z root', b'x\n')
        self.assertEqual(r.returncode, EX_USAGE, r.stderr)
        self.assertIn(b'-Z: unknown option', r.stderr)

    def test_ignored_options(self):
        tok = token()
        r = self.sendmail_as_user('-oem -odi -oQ/x -B 8BITMIME -N never -R hdrs -V envid -X /dev/null -U -G '
                                  '-h 5 -L lbl -n -m -oi -q5m root', ('ignored %s\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        mail_with(self.gw, 'root', tok)

    def test_sender_option(self):
        tok = token()
        r = self.sendmail_as_user('-f boss@example.org root', ('from user %s\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'-f boss@example.org ignored', r.stderr)
        self.assertTrue(mail_with(self.gw, 'root', tok).startswith(
            b'Return-Path: <%s@localhost>' % TEST_USER.encode()))
        tok = token()
        r = subprocess.run([self.sendmail, '-f', 'boss@example.org', 'root'], input=('from root %s\n' % tok).encode(),
                           capture_output=True, env=dict(os.environ, **self.env), timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(mail_with(self.gw, 'root', tok).startswith(b'Return-Path: <boss@example.org>'))
        log('-f: ignored with a warning for %s, taken from root (trusted_users)' % TEST_USER)

    def test_without_setgid(self):
        plain = install_sendmail(self.gw, setgid=False)
        r = as_user('%s root' % plain, b'x\n', self.env)
        self.assertEqual(r.returncode, EX_CANTCREAT, r.stderr)
        self.assertRegex(r.stderr.decode(), r'^sendmail: 451 4.3.0 .*(drop|set-group-id)')

    def test_untrusted_configuration(self):
        conf = os.path.join(self.gw.dir, 'user.conf')
        shutil.copy(self.gw.conf, conf)
        os.chown(conf, self.pw.pw_uid, -1)
        r = self.sendmail_as_user('root', b'x\n', {'SPOOLGATE_CONF': conf})
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b'must belong to root', r.stderr)


class FullDisk(unittest.TestCase):
    """A spool on a 1 MB tmpfs: the drop cannot be written, EX_TEMPFAIL and 452 4.3.1."""

    def test_full_spool(self):
        if not harness.IS_ROOT:
            self.skipTest('needs root')
        ensure_group()
        pw = harness.add_user(TEST_USER)
        self.addCleanup(harness.remove_user, TEST_USER)
        gw = harness.Instance('sendmail-full', max_message_size=8 << 20, group=GROUP)
        self.addCleanup(gw.cleanup)
        why = gw.mount_tmpfs_spool('1m')
        if why:
            self.skipTest(why)
        gw.start_smtpd()	# makes drop/
        gw.stop('smtpd')
        sendmail = install_sendmail(gw)
        data = b'Subject: big\n\n' + (b'y' * 99 + b'\n') * 20000	# 2 MB
        r = as_user('%s root' % sendmail, data, {'SPOOLGATE_CONF': gw.conf})
        self.assertEqual(r.returncode, EX_TEMPFAIL, r.stderr)
        self.assertRegex(r.stderr.decode(), r'^sendmail: 452 4.3.1 ')
        self.assertEqual(gw.listdir('drop'), [])
        log('full spool: exit %d, %s (uid %d)' % (r.returncode, r.stderr.decode().strip()[:80], pw.pw_uid))


class Stopped(SendmailBase):
    """smtpd stopped: the drop waits; the next start queues it."""

    def test_delivery_while_stopped(self):
        tok = token()
        self.gw.stop('smtpd')
        r = self.sendmail_as_user('root', ('while stopped %s\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        drops = self.drops()
        self.assertEqual(len(drops), 1, drops)
        st = os.stat(self.gw.path('drop', drops[0]))
        self.assertEqual(st.st_uid, self.pw.pw_uid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o604)
        self.assertEqual(self.gw.mailbox_new('root'), [])
        self.gw.start_smtpd()
        mail_with(self.gw, 'root', tok)
        wait_until(lambda: self.drops() == [], 10, 'drop/ to be empty')
        log('stopped: exit 0, drop waited (owner uid %d, mode 0604), delivered after the start'
            % self.pw.pw_uid)


class Forged(SendmailBase):
    """Drops the gateway must refuse, written straight into drop/ by root."""

    def forge(self, name, content=None, owner=None, symlink_to=None, fifo=False):
        tmp = self.gw.path('drop', '.' + name)
        if symlink_to:
            os.symlink(symlink_to, tmp)
        elif fifo:
            os.mkfifo(tmp, 0o666)
        else:
            with open(tmp, 'wb') as f:
                f.write(content)
            os.chmod(tmp, 0o604)
            if owner is not None:
                os.chown(tmp, owner, -1)
        start = len(self.gw.read_log('smtpd'))
        os.rename(tmp, self.gw.path('drop', name))
        line = wait_until(lambda: re.search(r'event=pickup-rejected drop=%s .*' % re.escape(name),
                                            self.gw.read_log('smtpd')[start:]), 10, 'the rejection of ' + name)
        wait_until(lambda: name not in self.drops(), 10, name + ' to leave drop/')
        msgid = re.search(r' id=(\S+)', line.group(0)).group(1)
        with open(self.gw.path('failed', msgid)) as f:
            rec = parse_record(f.read())
        log('forged %s: %s' % (name, rec['rejected']))
        return rec, line.group(0), msgid

    def record(self, uid, sender, body=b'Subject: forged\n\nbody\n'):
        return (b'spoolgate-drop: 1\nuid: %d\nsender: <%s>\nextract: no\nrcpt: root\n\n'
                % (uid, sender.encode())) + body

    def test_garbage(self):
        rec, line, _ = self.forge('garbage', b'From: a@b\nTo: root@localhost\n\nnot a drop\n')
        self.assertRegex(rec['rejected'], r'^554 5.6.0 EBADMSG .*record does not parse')
        self.assertIn('origin', rec)

    def test_symlink(self):
        rec, line, msgid = self.forge('link', symlink_to='/etc/shadow')
        self.assertRegex(rec['rejected'], r'^554 5.6.0 EBADMSG .*symbolic link')
        self.assertEqual(os.path.getsize(self.gw.path('data', msgid)), 0)	# nothing was read through it

    def test_fifo(self):
        rec, line, msgid = self.forge('fifo', fifo=True)
        self.assertRegex(rec['rejected'], r'^554 5.6.0 EBADMSG .*not a regular file')

    def test_claims_another_uid(self):
        rec, line, _ = self.forge('otheruid', self.record(0, 'root@localhost'), owner=self.pw.pw_uid)
        self.assertRegex(rec['rejected'], r'^553 5.7.1 EPERM .*claims uid 0 but belongs to uid %d' % self.pw.pw_uid)
        self.assertIn('uid=%d' % self.pw.pw_uid, line)

    def test_sender_not_allowed(self):
        rec, line, _ = self.forge('sender', self.record(self.pw.pw_uid, 'ceo@example.org'), owner=self.pw.pw_uid)
        self.assertRegex(rec['rejected'], r'^553 5.7.1 EPERM .*sender <ceo@example.org> is not')

    def test_message_refused_again(self):
        """A drop whose record is fine but whose message fails outbox/'s checks (the gateway checks again)."""
        rec, line, _ = self.forge('nul', self.record(self.pw.pw_uid, TEST_USER + '@localhost',
                                                     b'Subject: a\x00b\n\nbody\n'), owner=self.pw.pw_uid)
        self.assertRegex(rec['rejected'], r'^554 5.6.0 EBADMSG .*NUL')


class Mailq(SendmailBase):
    """The queue as a table, and --flush."""

    @classmethod
    def make_instance(cls):
        # Nothing listens at the default smarthost: messages wait, retry_min 3600.
        return harness.Instance('mailq', hostname='gw.test', sender_domain='localhost', group=GROUP)

    def mailq(self, *args, user=False):
        cmd = '%s %s' % (harness.MAILQ, ' '.join(args))
        if user:
            return as_user(cmd, env=self.env)
        return subprocess.run(cmd.split(), capture_output=True, env=dict(os.environ, **self.env), timeout=60)

    def rows(self, msgid):
        """The rows of mailq's table for msgid."""
        out = self.mailq()
        self.assertEqual(out.returncode, 0, out.stderr)
        return [l for l in out.stdout.decode().splitlines() if l.startswith(msgid)]

    def queued_by_sendmail(self, rcpt, what):
        """(id, record text, data) of a message sent to rcpt and deferred
        once; smtpd is stopped then (started again at the cleanup), so that
        the test can make the relay's states by hand."""
        tok = token()
        r = self.sendmail_as_user(rcpt, ('%s %s\n' % (what, tok)).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: self.attempts(tok) >= 1, 20, 'the first attempt')
        _, text, data = record_with(self.gw, tok, dirs=('queue',))
        self.gw.stop('smtpd')
        self.addCleanup(self.gw.start_smtpd)
        return parse_record(text)['id'], text, data

    def attempts(self, tok):
        _, text, _ = record_with(self.gw, tok, dirs=('queue',))
        return int(parse_record(text).get('attempts', 0))

    def test_table_and_flush(self):
        tok = token()
        r = self.sendmail_as_user('bob@example.org carol@example.org', ('queued %s\n' % tok).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: self.attempts(tok) >= 1, 20, 'the first attempt')
        _, text, _ = record_with(self.gw, tok, dirs=('queue',))
        msgid = parse_record(text)['id']
        out = self.mailq()
        self.assertEqual(out.returncode, 0, out.stderr)
        table = out.stdout.decode()
        self.assertRegex(table, r'^ID +SIZE +ARRIVAL +NEXT-ATTEMPT +SENDER +RECIPIENTS +LAST-REPLY')
        row = [l for l in table.splitlines() if l.startswith(msgid)]
        self.assertEqual(len(row), 1, table)
        self.assertRegex(row[0], r'%s@localhost +bob@example.org \+1 +451 4.4.1' % TEST_USER)
        self.assertRegex(row[0], r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d{4}-\d\d-\d\d')
        path = os.path.dirname(harness.MAILQ) + ':' + os.environ.get('PATH', '/usr/bin:/bin')
        bp = subprocess.run([self.sendmail, '-bp'], capture_output=True, env=dict(os.environ, PATH=path, **self.env),
                            timeout=60)
        self.assertEqual(bp.returncode, 0, bp.stderr)
        self.assertIn(row[0].encode(), bp.stdout)		# sendmail -bp is mailq
        verbose = self.mailq('-v').stdout.decode()
        self.assertRegex(verbose, r'pending +<carol@example.org> 451 4.4.1')
        denied = self.mailq(user=True)
        self.assertEqual(denied.returncode, EX_NOPERM, denied.stderr)
        self.assertIn(b'readable by root and spoolgate only', denied.stderr)
        self.assertNotIn(msgid.encode(), denied.stdout)
        log('mailq: %s' % row[0][:150])

        flushed = self.mailq('--flush')
        self.assertEqual(flushed.returncode, 0, flushed.stderr)
        self.assertIn(b'queue run started', flushed.stdout)
        wait_until(lambda: self.attempts(tok) >= 2, 20, 'the attempt --flush asked for')
        self.assertIn('event=relay-flush', self.gw.read_log('smtpd'))

        # Stopped: the request waits and the start takes it.
        self.gw.stop('smtpd')
        late = self.mailq('--flush')
        self.assertEqual(late.returncode, EX_UNAVAILABLE, late.stderr)
        self.assertIn(b'did not take the request', late.stderr)
        self.assertTrue(os.path.exists(self.gw.path('flush')))
        self.gw.start_smtpd()
        wait_until(lambda: self.attempts(tok) >= 3, 20, 'the attempt of the --flush made while stopped')
        self.assertFalse(os.path.exists(self.gw.path('flush')))
        log('mailq --flush: attempts 1 -> 2 at once; while stopped exit %d, then 3 at the start'
            % late.returncode)

    def test_moving_record_listed_once(self):
        """a record claimed, parked in tmp/ or published twice is one row; one in sent/ is none"""
        # The states the relay passes through, made by hand with the relay
        # stopped, as another host's runner would leave them (no recovery here
        # gives them back).
        msgid, text, _ = self.queued_by_sendmail('dave@example.org', 'moving')
        claim = '%s@elsewhere.invalid,4242' % msgid
        queued = self.gw.path('queue', msgid)
        os.rename(queued, self.gw.path('active', claim))
        self.assertEqual([l[32] for l in self.rows(msgid)], ['*'])
        os.rename(self.gw.path('active', claim), self.gw.path('tmp', claim + '.old'))
        self.addCleanup(os.rename, self.gw.path('tmp', claim + '.old'), queued)
        self.assertEqual([l[32] for l in self.rows(msgid)], ['*'])
        with open(queued, 'w') as f:		# published back to queue/, not yet released
            f.write(text)
        self.assertEqual([l[32] for l in self.rows(msgid)], [' '])
        os.rename(queued, self.gw.path('sent', msgid))	# published to sent/
        self.addCleanup(os.unlink, self.gw.path('sent', msgid))
        self.assertEqual(self.rows(msgid), [])

    def test_inline_record_same_row(self):
        """a message queued as an inline record (one file, as spoolgate-fs writes it) is the same row, same size"""
        msgid, text, data = self.queued_by_sendmail('erin@example.org', 'inline')
        before = self.rows(msgid)
        self.assertEqual(len(before), 1)
        # common/envelope.h: the record, "data: inline" after data-offset, an
        # empty line, then what data/<id> held; data-offset counts from there
        # (the files set aside go outside the spool: mailq reads every name in queue/)
        queued, datafile = self.gw.path('queue', msgid), self.gw.path('data', msgid)
        aside = os.path.join(self.gw.dir, msgid)
        os.rename(datafile, aside + '.data')
        self.addCleanup(os.rename, aside + '.data', datafile)
        inline = re.sub(r'(?m)^(data-offset: \d+\n)', r'\1data: inline\n', text)
        self.assertIn('\ndata: inline\n', inline)
        with open(aside + '.inline', 'wb') as f:
            f.write(inline.encode() + b'\n' + data)
        os.rename(queued, aside + '.plain')
        self.addCleanup(os.replace, aside + '.plain', queued)
        os.rename(aside + '.inline', queued)
        self.assertEqual(self.rows(msgid), before)


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.SENDMAIL, harness.MAILQ))
