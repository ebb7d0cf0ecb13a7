#!/usr/bin/python3
"""test_fs_users - the mount shared by Unix users ([fs] allow_other = yes).

Three users of the test's own (useradd, always removed), working through
su as a login would: sgalice, sgbob, and sgtrust, in [sendmail]
trusted_users.  Mailbox "alerts" belongs to sgalice through [fs]
mailbox_owners.  The relay's smarthost is the gateway's own listener, so
what the outbox sends comes back into inbox/ and its record ends in sent/.
- inbox/: sgalice's `ls inbox/` shows sgalice and alerts, never sgbob; `ls
  inbox/sgbob` and `cat inbox/sgbob/<msg>` print "Permission denied", also
  right after root listed that mailbox (the kernel's cache is shared), and
  so does `stat` of a mailbox that does not exist (a guessed name tells
  nothing); she reads and removes her own messages; bob cannot remove hers;
  root lists every mailbox;
- outbox/: a draft sgalice holds open is owned by her, mode 0600, and
  `cat` of it by sgbob says "Permission denied"; bob cannot rm it;
- queue/sent/failed: each user lists only what it submitted (through
  outbox/ or spoolgate-sendmail, copied set-group-id as a package installs
  it), `cat` of another's record is "No such file or directory", root sees
  both;
- the record's origin, the Received: line and the log name uid and login;
- `cp` of a message whose From: is another user's fails with EPERM,
  "Operation not permitted" printed by cp, and failed/ keeps it with
  "553 5.7.1 EPERM"; sgtrust may send as anyone;
- the daemon, root, keeps five capabilities after the mount (effective,
  permitted and bounding sets read from /proc/PID/status) and no_new_privs,
  and still sets the mount's read-ahead (512 KiB).
Skipped (77) without FUSE or without root (useradd, su).
"""

import os
import pwd
import smtplib
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, parse_record, wait_until

ALICE, BOB, TRUSTED = 'sgalice', 'sgbob', 'sgtrust'
GROUP = 'spoolgate-drop'


def setUpModule():
    why = harness.fuse_available()
    if why:
        raise unittest.SkipTest(why)
    if not harness.IS_ROOT:
        raise unittest.SkipTest('needs root: useradd, su, allow_other')


def token():
    return uuid.uuid4().hex[:12]


def message(sender, rcpt, tok):
    return ('From: %s\nTo: %s\nSubject: users %s\n\nbody %s\n' % (sender, rcpt, tok, tok)).encode()


class SharedMount(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pw = {}
        for user in (ALICE, BOB, TRUSTED):
            cls.pw[user] = harness.add_user(user)
            cls.addClassCleanup(harness.remove_user, user)
        harness.ensure_group(GROUP)
        cls.gw = harness.Instance('fsusers', hostname='gw.test', sender_domain='localhost',
                                  trusted_users='root %s' % TRUSTED, allow_other=True,
                                  mailbox_owners='alerts:%s' % ALICE, retry_min=60, group=GROUP)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.cfg['smarthost'] = '127.0.0.1:%d' % cls.gw.port	# back into inbox/
        cls.gw.start_smtpd()
        cls.gw.start_fs()
        cls.sendmail = harness.install_sendmail(cls.gw, GROUP)
        cls.src = os.path.join(cls.gw.dir, 'src')	# files every user may read
        os.mkdir(cls.src, 0o755)

    def mnt(self, *parts):
        return os.path.join(self.gw.mnt, *parts)

    def as_user(self, user, cmd, data=b''):
        r = harness.run_as(user, 'cd %s && %s' % (self.gw.mnt, cmd), data)
        log('%s$ %s -> %d %s%s' % (user, cmd, r.returncode, r.stdout.decode(errors='replace')[:200],
                                   r.stderr.decode(errors='replace')[:200]))
        return r

    def deliver(self, mailbox, tok):
        with smtplib.SMTP('127.0.0.1', self.gw.port, timeout=10) as s:
            s.sendmail('someone@example.org', ['%s@localhost' % mailbox],
                       message('someone@example.org', '%s@localhost' % mailbox, tok))
        return wait_until(lambda: [n for n in self.gw.mailbox_new(mailbox)
                                   if tok.encode() in self.gw.read_mail(mailbox, n)] or None,
                          15, '%s in mail/%s' % (tok, mailbox))[0]

    def source(self, name, data):
        path = os.path.join(self.src, name)
        with open(path, 'wb') as f:
            f.write(data)
        os.chmod(path, 0o644)
        return path

    def submit(self, user, name, sender, rcpt, tok):
        """cp of a message into outbox/ as user; the CompletedProcess."""
        path = self.source(name, message(sender, rcpt, tok))
        return self.as_user(user, 'cp %s outbox/%s' % (path, name))

    def record_of(self, tok, dirs=('sent', 'queue', 'failed')):
        """(dir, id, record) of the message holding tok, read as root through the mount."""
        def find():
            for d in dirs:
                for name in os.listdir(self.mnt(d)):
                    if name.endswith('.status'):
                        continue
                    try:
                        with open(self.mnt(d, name), 'rb') as f:
                            data = f.read()
                        with open(self.mnt(d, name + '.status')) as f:
                            rec = f.read()
                    except FileNotFoundError:
                        continue
                    if tok.encode() in data:
                        return d, name, rec, data
            return None
        return wait_until(find, 20, 'a record holding %s' % tok)

    # ------------------------------------------------------------ inbox/

    def test_mailboxes_belong_to_their_users(self):
        tok = token()
        mine = self.deliver(ALICE, tok)
        self.deliver('alerts', tok)
        bobs = self.deliver(BOB, tok)
        r = self.as_user(ALICE, 'ls inbox/')
        self.assertEqual(r.returncode, 0, r.stderr)
        names = r.stdout.decode().split()
        self.assertIn(ALICE, names)
        self.assertIn('alerts', names)
        self.assertNotIn(BOB, names)
        self.assertIn(BOB, os.listdir(self.mnt('inbox')), 'root sees every mailbox')
        # root looks first: the names are in the kernel's cache for everyone
        self.assertIn(bobs, os.listdir(self.mnt('inbox', BOB)))
        r = self.as_user(ALICE, 'ls inbox/%s' % BOB)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'Permission denied', r.stderr)
        r = self.as_user(ALICE, 'cat inbox/%s/%s' % (BOB, bobs))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'Permission denied', r.stderr)
        self.assertNotIn(tok.encode(), r.stdout)
        for name in (BOB, 'nosuchbox'):
            r = self.as_user(ALICE, 'stat inbox/%s' % name)
            self.assertIn(b'Permission denied', r.stderr, 'a guessed name tells nothing')
        r = self.as_user(ALICE, 'stat -c "%%U %%a" inbox/%s' % ALICE)
        self.assertEqual(r.stdout.decode().strip(), '%s 700' % ALICE)
        r = self.as_user(ALICE, 'stat -c "%%U %%a" inbox/%s/%s' % (ALICE, mine))
        self.assertEqual(r.stdout.decode().strip(), '%s 400' % ALICE)
        r = self.as_user(ALICE, 'cat inbox/%s/%s' % (ALICE, mine))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(('body %s' % tok).encode(), r.stdout)
        r = self.as_user(BOB, 'rm -f inbox/%s/%s' % (ALICE, mine))
        self.assertIn(b'Permission denied', r.stderr)
        self.assertIn(mine, os.listdir(self.mnt('inbox', ALICE)))
        r = self.as_user(ALICE, 'rm inbox/%s/%s' % (ALICE, mine))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(mine, self.gw.mailbox_files(ALICE))
        r = self.as_user(ALICE, 'ls inbox/alerts')
        self.assertEqual(r.returncode, 0, r.stderr)

    # ------------------------------------------------------------ outbox/

    def test_draft_is_the_writers_alone(self):
        tok = token()
        head = message('%s@localhost' % ALICE, '%s@localhost' % ALICE, tok)
        writer = subprocess.Popen(
            ['su', '-s', '/bin/sh', ALICE, '-c',
             'cd %s && exec 3>outbox/draft-%s && printf "%%s" "$1" >&3 && echo ready && read x'
             % (self.gw.mnt, tok), 'sh', head.decode()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(writer.stdout.readline().strip(), b'ready')
            r = self.as_user(BOB, 'stat -c "%%U %%a" outbox/draft-%s' % tok)
            self.assertEqual(r.stdout.decode().strip(), '%s 600' % ALICE)
            r = self.as_user(BOB, 'cat outbox/draft-%s' % tok)
            self.assertIn(b'Permission denied', r.stderr)
            self.assertNotIn(tok.encode(), r.stdout)
            r = self.as_user(BOB, 'rm -f outbox/draft-%s' % tok)
            self.assertNotEqual(r.returncode, 0)
            r = self.as_user(ALICE, 'cat outbox/draft-%s' % tok)
            self.assertIn(tok.encode(), r.stdout)
        finally:
            writer.communicate(b'\n', timeout=30)
        self.assertEqual(writer.returncode, 0, writer.stderr)
        self.record_of(tok)

    # ------------------------------------------------- queue/ sent/ failed/

    def test_records_show_their_submitter(self):
        tok_a, tok_b = token(), token()
        r = self.submit(ALICE, 'a-%s.eml' % tok_a, '%s@localhost' % ALICE, '%s@localhost' % BOB, tok_a)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.submit(BOB, 'b-%s.eml' % tok_b, '%s@localhost' % BOB, '%s@localhost' % ALICE, tok_b)
        self.assertEqual(r.returncode, 0, r.stderr)
        where_a, id_a, rec_a, data_a = self.record_of(tok_a, dirs=('sent',))
        where_b, id_b, rec_b, _ = self.record_of(tok_b, dirs=('sent',))
        uid_a = self.pw[ALICE].pw_uid
        self.assertEqual(parse_record(rec_a)['origin'], 'fs outbox/a-%s.eml uid=%d user=%s'
                         % (tok_a, uid_a, ALICE))
        self.assertIn(b'(uid %d, user %s, file a-%s.eml)' % (uid_a, ALICE.encode(), tok_a.encode()),
                      b' '.join(data_a.split()))
        self.assertRegex(self.gw.read_log('fs'), r'event=outbox-submitted id=%s name=a-%s.eml '
                         r'size=\d+ uid=%d user=%s' % (id_a, tok_a, uid_a, ALICE))
        self.assertEqual(parse_record(rec_a)['from'], '<%s@localhost>' % ALICE)
        r = self.as_user(ALICE, 'ls sent/')
        names = r.stdout.decode().split()
        self.assertIn(id_a, names)
        self.assertIn(id_a + '.status', names)
        self.assertNotIn(id_b, names)
        self.assertNotIn(id_b + '.status', names)
        r = self.as_user(BOB, 'ls sent/')
        self.assertIn(id_b, r.stdout.decode().split())
        self.assertNotIn(id_a, r.stdout.decode().split())
        root_names = os.listdir(self.mnt('sent'))
        self.assertIn(id_a, root_names)
        self.assertIn(id_b, root_names)
        r = self.as_user(ALICE, 'cat sent/%s.status' % id_b)
        self.assertIn(b'No such file or directory', r.stderr)
        r = self.as_user(ALICE, 'cat sent/%s.status' % id_a)
        self.assertIn(b'origin: fs outbox/', r.stdout)
        r = self.as_user(ALICE, 'stat -c "%%U %%a" sent/%s' % id_a)
        self.assertEqual(r.stdout.decode().strip(), '%s 400' % ALICE)

    def test_sendmail_submissions_are_the_users(self):
        tok = token()
        r = harness.run_as(ALICE, '%s -t' % self.sendmail,
                           message('%s@localhost' % ALICE, '%s@localhost' % BOB, tok),
                           env={'SPOOLGATE_CONF': self.gw.conf})
        self.assertEqual(r.returncode, 0, r.stderr)
        _, msgid, rec, data = self.record_of(tok, dirs=('sent',))
        self.assertEqual(parse_record(rec)['origin'], 'sendmail uid=%d user=%s'
                         % (self.pw[ALICE].pw_uid, ALICE))
        self.assertIn(b'(uid %d, user %s);' % (self.pw[ALICE].pw_uid, ALICE.encode()), data)
        self.assertIn(msgid, self.as_user(ALICE, 'ls sent/').stdout.decode().split())
        self.assertNotIn(msgid, self.as_user(BOB, 'ls sent/').stdout.decode().split())

    # ------------------------------------------------------------ senders

    def test_sender_must_be_the_writers(self):
        tok = token()
        r = self.submit(ALICE, 'forged-%s.eml' % tok, '%s@localhost' % BOB, '%s@localhost' % BOB, tok)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'Operation not permitted', r.stderr)
        where, _, rec, _ = self.record_of(tok, dirs=('failed',))
        rejected = parse_record(rec)['rejected']
        self.assertTrue(rejected.startswith('553 5.7.1 EPERM rejected at submission: sender <%s@localhost>'
                                            % BOB), rejected)
        self.assertIn('uid=%d user=%s' % (self.pw[ALICE].pw_uid, ALICE), parse_record(rec)['origin'])
        self.assertRegex(self.gw.read_log('fs'), r'event=outbox-rejected name=forged-%s.eml errno=EPERM '
                         r'reply="553 5.7.1 Sender address rejected: not owned by user" why="[^"]*" '
                         r'uid=%d user=%s id=' % (tok, self.pw[ALICE].pw_uid, ALICE))
        log('%s as %s: %s' % (ALICE, BOB, rejected))
        # the trusted user chooses its sender
        tok = token()
        r = self.submit(TRUSTED, 'boss-%s.eml' % tok, 'boss@example.org', '%s@localhost' % BOB, tok)
        self.assertEqual(r.returncode, 0, r.stderr)
        where, _, rec, _ = self.record_of(tok, dirs=('sent', 'queue'))
        self.assertEqual(parse_record(rec)['from'], '<boss@example.org>')

    # ------------------------------------------------------------ the daemon

    def test_daemon_keeps_five_capabilities(self):
        """after the mount: sys_admin, sys_ptrace, dac_override, chown, fowner, and no more"""
        kept = (1 << 21) | (1 << 19) | (1 << 1) | (1 << 0) | (1 << 3)
        with open('/proc/%d/status' % self.gw.procs['fs'].pid) as f:
            status = dict(line.split(':\t', 1) for line in f.read().splitlines() if ':\t' in line)
        log('fs daemon: uid %s CapEff %s CapBnd %s NoNewPrivs %s' % (
            status['Uid'].split()[0], status['CapEff'], status['CapBnd'], status['NoNewPrivs']))
        for field in ('CapEff', 'CapPrm', 'CapBnd'):
            self.assertEqual(int(status[field], 16), kept, field)
        self.assertEqual(status['NoNewPrivs'].strip(), '1')
        self.assertIn('event=capabilities-dropped', self.gw.read_log('fs'))
        # what it kept still does its work: the read-ahead set at the first request
        os.listdir(self.gw.mnt)
        with open('/proc/self/mountinfo') as f:
            majmin = [line.split()[2] for line in f if line.split()[4] == self.gw.mnt][0]
        with open('/sys/class/bdi/%s/read_ahead_kb' % majmin) as f:
            self.assertEqual(f.read().strip(), '512')


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
