#!/usr/bin/python3
"""test_passwd - spoolgate-passwd, the tool that manages the SMTP server's users.

add from standard input (--stdin) and from a terminal (a pty: asked twice,
never echoed; two different answers change nothing), --scram-only and
--crypt-only, --from kept across a new password and cleared with "", del,
list without any secret, the file's mode (0600) and owner kept across
rewrites, a new file made with -c given to the [spool] user, refusals of a
broken or world-readable file (nothing written), no terminal without
--stdin; --cram-md5: the password stored as cram-md5= (base64) with a
warning on stderr, listed as a password equivalent, kept 0600, dropped by
an add without --cram-md5, and passwords SASLprep would change refused.
The daemon's side of these files is in test_auth.py and test_odmr.py.
"""

import os
import pty
import pwd
import base64
import re
import select
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log

PASSWD = os.path.join(harness.BUILD, 'smtpd', 'spoolgate-passwd')


def run(*args, stdin=None):
    return subprocess.run([PASSWD] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=60, start_new_session=True)


def users_lines(path):
    with open(path) as f:
        return {l.split()[0]: l.split()[1:] for l in f if l.strip() and not l.startswith('#')}


class Passwd(unittest.TestCase):

    def setUp(self):
        self.gw = harness.Instance('passwd')
        self.addCleanup(self.gw.cleanup)
        self.users = os.path.join(self.gw.dir, 'users')

    def add(self, user, password, *opts):
        r = run('-f', self.users, 'add', '--stdin', *opts, user, stdin=password + '\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_add_list_del(self):
        self.add('alice@example.org', 'alice pass phrase')
        self.add('bob', 'bob pw', '--crypt-only', '--from', 'bob@example.org,@example.net')
        self.add('carol', 'carol pw', '--scram-only', '--iterations', '8192')
        st = os.stat(self.users)
        self.assertEqual(st.st_mode & 0o7777, 0o600)
        text = open(self.users).read()
        for pw in ('alice pass phrase', 'bob pw', 'carol pw'):
            self.assertNotIn(pw, text, 'a password is stored in clear')
        lines = users_lines(self.users)
        self.assertTrue(lines['alice@example.org'][0].startswith('scram=4096:'))
        self.assertTrue(lines['alice@example.org'][1].startswith('crypt=$y$'))
        self.assertEqual(len(lines['bob']), 2)
        self.assertTrue(lines['bob'][0].startswith('crypt=$y$'))
        self.assertEqual(lines['carol'], [lines['carol'][0]])
        self.assertTrue(lines['carol'][0].startswith('scram=8192:'))

        r = run('-f', self.users, 'list')
        self.assertEqual(r.returncode, 0, r.stderr)
        log(r.stdout)
        self.assertEqual(r.stdout.splitlines(), [
            'alice@example.org scram-sha-256(4096) crypt(yescrypt)',
            'bob crypt(yescrypt) from=bob@example.org,@example.net',
            'carol scram-sha-256(8192)'])
        secrets = re.findall(r'(?:scram|crypt)=([^ \n]+)', text)
        for s in secrets:
            for part in re.split(r'[:$]', s):
                if len(part) >= 16:
                    self.assertNotIn(part, r.stdout, 'list printed a secret')

        # A new password keeps the senders; --from "" clears them.
        old = users_lines(self.users)['bob'][0]
        self.add('bob', 'bob new pw', '--crypt-only')
        self.assertNotEqual(users_lines(self.users)['bob'][0], old)
        self.assertEqual(users_lines(self.users)['bob'][1], 'from=bob@example.org,@example.net')
        self.add('bob', 'bob new pw', '--crypt-only', '--from', '')
        self.assertEqual(len(users_lines(self.users)['bob']), 1)

        r = run('-f', self.users, 'del', 'alice@example.org')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('alice@example.org', users_lines(self.users))
        r = run('-f', self.users, 'del', 'alice@example.org')
        self.assertEqual(r.returncode, 1)
        self.assertIn('alice@example.org: no such user', r.stderr)

    def test_cram_md5_opt_in(self):
        """--cram-md5 stores the password itself (base64) and says so; a new password without it drops it"""
        r = self.add('fetch@example.org', 'fetch pass phrase', '--cram-md5')
        self.assertIn('WARNING', r.stderr)
        self.assertIn('password-equivalent', r.stderr)
        self.assertIn(self.users, r.stderr)
        self.assertNotIn('fetch pass phrase', r.stderr + r.stdout, 'the secret was printed')
        self.assertEqual(os.stat(self.users).st_mode & 0o7777, 0o600)
        words = dict(w.split('=', 1) for w in users_lines(self.users)['fetch@example.org'])
        self.assertEqual(base64.b64decode(words['cram-md5']), b'fetch pass phrase')
        self.assertIn('scram', words)
        self.assertIn('crypt', words)
        r = run('-f', self.users, 'list')
        self.assertRegex(r.stdout, r'(?m)^fetch@example\.org scram-sha-256\(4096\) crypt\(yescrypt\) '
                         r'cram-md5\(password-equivalent\)$')
        self.assertNotIn('fetch pass phrase', r.stdout)
        # without --cram-md5: no warning, nothing stored for CRAM-MD5
        r = self.add('plain@example.org', 'plain pw')
        self.assertNotIn('WARNING', r.stderr)
        self.assertNotIn('cram-md5=', ' '.join(users_lines(self.users)['plain@example.org']))
        # a new password without --cram-md5 removes the old equivalent
        self.add('fetch@example.org', 'new pass phrase')
        self.assertNotIn('cram-md5=', ' '.join(users_lines(self.users)['fetch@example.org']))
        self.assertNotIn('fetch pass phrase', open(self.users).read())
        # a password SASLprep would change cannot be used as stored (the server prepares it)
        before = open(self.users).read()
        r = run('-f', self.users, 'add', '--stdin', '--cram-md5', 'odd', stdin='caf\u00e9\u00ad x\n')
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('SASLprep', r.stderr)
        self.assertEqual(open(self.users).read(), before, 'a refused add changed the file')

    def test_terminal_twice_without_echo(self):
        def read_some(fd, timeout=30):
            r, _, _ = select.select([fd], [], [], timeout)
            self.assertTrue(r, 'spoolgate-passwd said nothing for %ds' % timeout)
            try:
                return os.read(fd, 1024)
            except OSError:		# EIO: the child is gone
                return b''

        def ask(answers):
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(PASSWD, [PASSWD, '-f', self.users, 'add', 'dave'])
            seen = b''
            for prompt, a in zip((b'New password for dave:', b'Again:'), answers):
                while prompt not in seen:
                    chunk = read_some(fd)
                    self.assertTrue(chunk, 'no prompt %r, got %r' % (prompt, seen))
                    seen += chunk
                os.write(fd, a.encode() + b'\n')
            while True:
                chunk = read_some(fd)
                if not chunk:
                    break
                seen += chunk
            os.close(fd)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status), seen.decode(errors='replace')

        code, out = ask(['typed secret', 'typed secret'])
        log(out)
        self.assertEqual(code, 0, out)
        self.assertIn('New password for dave:', out)
        self.assertIn('Again:', out)
        self.assertNotIn('typed secret', out, 'the password was echoed')
        first = users_lines(self.users)['dave']
        code, out = ask(['one', 'other'])
        self.assertEqual(code, 1)
        self.assertIn('the passwords differ; nothing changed', out)
        self.assertEqual(users_lines(self.users)['dave'], first)

    def test_no_terminal(self):
        r = run('-f', self.users, 'add', 'erin', stdin='')
        self.assertEqual(r.returncode, 1)
        self.assertIn('no terminal to ask the password on: use --stdin', r.stderr)
        self.assertFalse(os.path.exists(self.users))
        r = run('-f', self.users, 'add', '--stdin', 'erin', stdin='')
        self.assertEqual(r.returncode, 1)
        self.assertIn('no password on standard input', r.stderr)
        r = run('-f', self.users, 'add', '--stdin', 'a b', stdin='x\n')
        self.assertEqual(r.returncode, 1)
        self.assertIn('not a user name', r.stderr)
        r = run('-f', self.users, 'frobnicate')
        self.assertEqual(r.returncode, 2)

    def test_refuses_broken_or_open_file(self):
        with open(self.users, 'w') as f:
            f.write('ok crypt=$y$abc\nbroken password=clear\n')
        os.chmod(self.users, 0o600)
        before = open(self.users).read()
        r = run('-f', self.users, 'add', '--stdin', 'frank', stdin='pw\n')
        self.assertEqual(r.returncode, 1)
        self.assertIn('%s:2: unknown key' % self.users, r.stderr)
        self.assertEqual(open(self.users).read(), before)
        os.chmod(self.users, 0o644)
        r = run('-f', self.users, 'list')
        self.assertEqual(r.returncode, 1)
        self.assertIn('mode 0644 lets group or others read it (chmod 600)', r.stderr)

    @unittest.skipUnless(harness.IS_ROOT, 'owners need root')
    def test_owner_kept_and_new_file_for_spool_user(self):
        self.add('gina', 'pw')
        os.chown(self.users, 65534, 65534)
        self.add('hank', 'pw')
        st = os.stat(self.users)
        self.assertEqual((st.st_uid, st.st_gid), (65534, 65534))
        self.assertEqual(sorted(users_lines(self.users)), ['gina', 'hank'])
        self.assertEqual([n for n in os.listdir(self.gw.dir) if n.startswith('.users')], [])

        other = os.path.join(self.gw.dir, 'by-config')
        self.gw.cfg['auth_users'] = other
        self.gw.write_config()
        r = run('-c', self.gw.conf, 'add', '--stdin', 'ivan', stdin='pw\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(other)
        self.assertEqual(st.st_uid, pwd.getpwnam(harness.USER).pw_uid)
        self.assertEqual(st.st_mode & 0o7777, 0o600)
        r = run('-c', self.gw.conf, 'list')
        self.assertEqual(r.stdout, 'ivan scram-sha-256(4096) crypt(yescrypt)\n')


if __name__ == '__main__':
    harness.main(binaries=(PASSWD,))
