#!/usr/bin/python3
"""test_fs - the spoolgate-fs mount.

inbox/<mailbox>/<message> is the Maildir file, byte for byte, and `rm`
deletes it; inbox/ takes no new files.  outbox/: cp of a complete RFC 5322
message submits it at close (queue/<id>.status lists every To/Cc/Bcc
recipient, queue/<id> has no Bcc header); a file without recipients fails
at close with EDESTADDRREQ, a malformed address with EINVAL, and nothing is
queued; a file over max_message_size gets EFBIG.  queue/, sent/, failed/
are read-only.  The daemon can be killed -9 and restarted and everything
is still there.  Skipped (77) where FUSE is not available.

The smarthost is a port where nothing listens and retry_min is large, so
what is submitted stays queued.
"""

import errno
import os
import signal
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, parse_record, queued_id

MAX_SIZE = 1 << 20
REFUSED = (errno.EPERM, errno.EACCES, errno.EROFS)


def setUpModule():
    why = harness.fuse_available()
    if why:
        raise unittest.SkipTest(why)


def message(to='Bob <bob@example.net>', cc='carol@example.net, "Dave D." <dave@example.net>',
            bcc='eve@example.net', subject='fs test', body='hello through the outbox\n'):
    hdr = 'From: Alice <alice@example.org>\n'
    if to:
        hdr += 'To: %s\n' % to
    if cc:
        hdr += 'Cc: %s\n' % cc
    if bcc:
        hdr += 'Bcc: %s\n' % bcc
    hdr += 'Subject: %s\nMessage-ID: <%s@test>\n' % (subject, subject.replace(' ', '.'))
    return (hdr + '\n' + body).encode()


def write_and_close(path, data):
    """os-level create/write/close; returns None or the errno of the close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    except OSError:
        os.close(fd)
        raise
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return None


class Mount(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.gw = harness.Instance('fs', max_message_size=MAX_SIZE)
        cls.addClassCleanup(cls.gw.cleanup)
        cls.gw.start_smtpd()
        cls.gw.start_fs()

    def mnt(self, *parts):
        return os.path.join(self.gw.mnt, *parts)

    def send_smtp(self, box='bob', subject='to the inbox'):
        with smtplib.SMTP('127.0.0.1', self.gw.port, timeout=15) as s:
            s.ehlo('client.example')
            s.mail('alice@example.org')
            s.rcpt('%s@localhost' % box)
            code, text = s.data(('Subject: %s\r\n\r\nbody of %s\r\n' % (subject, subject)).encode())
            self.assertEqual(code, 250, text)
            return queued_id(text)

    def submit(self, data, name='msg.eml'):
        """cp a file into outbox/; returns the id of the new record."""
        before = self.gw.record_ids()
        src = os.path.join(self.gw.dir, 'src-' + name)
        with open(src, 'wb') as f:
            f.write(data)
        r = subprocess.run(['cp', src, self.mnt('outbox', name)], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, 'cp into outbox/ failed: %s' % r.stderr)
        new = self.gw.record_ids() - before
        self.assertEqual(len(new), 1, 'expected one new record after close, got %s' % new)
        return new.pop()

    def test_top_level(self):
        """the root lists inbox outbox queue sent failed"""
        self.assertEqual(sorted(os.listdir(self.gw.mnt)),
                         ['failed', 'inbox', 'outbox', 'queue', 'sent'])

    def test_inbox_read_and_rm(self):
        """a message sent by SMTP is readable at inbox/bob/<name>; rm removes it from the spool"""
        msgid = self.send_smtp()
        name = self.gw.find_mail('bob', msgid)
        self.assertIsNotNone(name)
        self.assertIn('bob', os.listdir(self.mnt('inbox')))
        self.assertIn(name, os.listdir(self.mnt('inbox', 'bob')))
        with open(self.mnt('inbox', 'bob', name), 'rb') as f:
            via_mount = f.read()
        spool_bytes = self.gw.read_mail('bob', name)
        self.assertEqual(via_mount, spool_bytes)
        self.assertEqual(os.stat(self.mnt('inbox', 'bob', name)).st_size, len(spool_bytes))
        os.unlink(self.mnt('inbox', 'bob', name))
        self.assertIsNone(self.gw.find_mail('bob', msgid), 'rm did not remove the spool file')
        self.assertNotIn(name, os.listdir(self.mnt('inbox', 'bob')))
        log('  read %d bytes of %s through the mount, then rm' % (len(via_mount), name))

    def test_inbox_not_writable(self):
        """inbox/: creating files or directories is refused; messages cannot be written"""
        msgid = self.send_smtp(subject='not writable')
        name = self.gw.find_mail('bob', msgid)
        with self.assertRaises(OSError) as cm:
            os.open(self.mnt('inbox', 'bob', 'new-file'), os.O_WRONLY | os.O_CREAT, 0o644)
        self.assertIn(cm.exception.errno, REFUSED)
        with self.assertRaises(OSError) as cm:
            os.mkdir(self.mnt('inbox', 'newbox'))
        self.assertIn(cm.exception.errno, REFUSED)
        with self.assertRaises(OSError) as cm:
            os.open(self.mnt('inbox', 'bob', name), os.O_WRONLY)
        self.assertIn(cm.exception.errno, REFUSED)

    def test_outbox_submit(self):
        """cp into outbox/: close 0, record queued, .status lists To/Cc/Bcc, data has no Bcc"""
        data = message(subject='outbox submit')
        msgid = self.submit(data)
        where, text = self.gw.find_record(msgid)
        self.assertIn(where, ('queue', 'active'), 'record of %s is in %s' % (msgid, where))
        # The mount shows it in queue/.
        names = os.listdir(self.mnt('queue'))
        self.assertIn(msgid, names)
        self.assertIn(msgid + '.status', names)
        with open(self.mnt('queue', msgid + '.status')) as f:
            status = f.read()
        rec = parse_record(status)
        self.assertEqual(rec.get('id'), msgid)
        self.assertEqual(rec.get('from'), '<alice@example.org>')
        rcpts = sorted(a for _, a, _ in rec['rcpt'])
        self.assertEqual(rcpts, ['bob@example.net', 'carol@example.net', 'dave@example.net',
                                 'eve@example.net'], status)
        with open(self.mnt('queue', msgid), 'rb') as f:
            queued = f.read()
        self.assertEqual(os.stat(self.mnt('queue', msgid)).st_size, len(queued))
        self.assertNotIn(b'bcc:', queued.lower(), 'Bcc header in the queued data')
        self.assertNotIn(b'eve@example.net', queued)
        self.assertIn(b'Subject: outbox submit\n', queued)
        self.assertIn(b'To: Bob <bob@example.net>\n', queued)
        self.assertTrue(queued.endswith(b'\n\nhello through the outbox\n'), queued)
        # Same bytes as the spool data file from data-offset.
        with open(self.gw.path('data', msgid), 'rb') as f:
            f.seek(int(rec.get('data-offset', '0')))
            self.assertEqual(f.read(), queued)
        self.assertNotIn('msg.eml', os.listdir(self.mnt('outbox')), 'closed file still in outbox/')
        log('  submitted %s: %d rcpts, %d bytes, no Bcc' % (msgid, len(rcpts), len(queued)))

    def test_outbox_no_recipient(self):
        """no To/Cc/Bcc: close fails with EDESTADDRREQ and nothing is queued"""
        before = self.gw.record_ids()
        data_before = self.gw.listdir('data')
        err = write_and_close(self.mnt('outbox', 'norcpt.eml'),
                              message(to=None, cc=None, bcc=None, subject='no rcpt'))
        self.assertEqual(err, errno.EDESTADDRREQ,
                         'close returned %s' % (errno.errorcode.get(err, err)))
        self.assertEqual(self.gw.record_ids(), before)
        self.assertEqual(self.gw.listdir('data'), data_before)
        # The relay in smtpd uses tmp/ too (records being rewritten): only the
        # fs daemon's own temporaries (its pid is in their names) must be gone.
        fs_tmp = 'P%dQ' % self.gw.procs['fs'].pid
        self.assertEqual([n for n in self.gw.listdir('tmp') if fs_tmp in n], [],
                         'temporary of spoolgate-fs left in spool/tmp')
        # cp reports it too.
        src = os.path.join(self.gw.dir, 'norcpt.eml')
        with open(src, 'wb') as f:
            f.write(message(to=None, cc=None, bcc=None))
        r = subprocess.run(['cp', src, self.mnt('outbox', 'norcpt2.eml')],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Destination address required', r.stderr)
        self.assertEqual(self.gw.record_ids(), before)

    def test_outbox_bad_address(self):
        """a malformed address: close fails with EINVAL and nothing is queued"""
        before = self.gw.record_ids()
        err = write_and_close(self.mnt('outbox', 'bad.eml'),
                              message(to='bob@bad..domain', cc=None, bcc=None, subject='bad'))
        self.assertEqual(err, errno.EINVAL, 'close returned %s' % errno.errorcode.get(err, err))
        self.assertEqual(self.gw.record_ids(), before)

    def test_outbox_not_a_message(self):
        """a header line without a colon: close fails with EBADMSG"""
        before = self.gw.record_ids()
        err = write_and_close(self.mnt('outbox', 'junk.eml'),
                              b'this is not a header\nTo: bob@example.net\n\nbody\n')
        self.assertEqual(err, errno.EBADMSG, 'close returned %s' % errno.errorcode.get(err, err))
        self.assertEqual(self.gw.record_ids(), before)

    def test_outbox_too_big(self):
        """writing past max_message_size fails with EFBIG; nothing queued"""
        before = self.gw.record_ids()
        fd = os.open(self.mnt('outbox', 'big.eml'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, message(subject='big'))
            chunk = b'x' * 1023 + b'\n'
            with self.assertRaises(OSError) as cm:
                for i in range(MAX_SIZE // len(chunk) + 2):
                    os.write(fd, chunk)
            self.assertEqual(cm.exception.errno, errno.EFBIG)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        self.assertEqual(self.gw.record_ids(), before)

    def test_outbox_open_file_listed(self):
        """a file being written shows in outbox/ and disappears after close"""
        fd = os.open(self.mnt('outbox', 'open.eml'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, message(subject='listed while open'))
            self.assertIn('open.eml', os.listdir(self.mnt('outbox')))
        finally:
            os.close(fd)
        self.assertNotIn('open.eml', os.listdir(self.mnt('outbox')))

    def test_outbox_dotfile_rename(self):
        """a dotfile is held at close; renaming it to a normal name submits it"""
        before = self.gw.record_ids()
        for n in ('.draft', 'draft.eml'):
            self.addCleanup(lambda p=self.mnt('outbox', n): os.path.exists(p) and os.unlink(p))
        self.assertIsNone(write_and_close(self.mnt('outbox', '.draft'),
                                          message(subject='dotfile')))
        self.assertEqual(self.gw.record_ids(), before, 'a dotfile was submitted at close')
        self.assertIn('.draft', os.listdir(self.mnt('outbox')), 'a held dotfile vanished at close')
        os.rename(self.mnt('outbox', '.draft'), self.mnt('outbox', 'draft.eml'))
        new = self.gw.record_ids() - before
        self.assertEqual(len(new), 1, 'rename did not submit: %s' % new)

    def test_outbox_unlink_while_open(self):
        """unlinking an outbox file that is still open drops it: nothing is queued"""
        before = self.gw.record_ids()
        fd = os.open(self.mnt('outbox', 'dropped.eml'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, message(subject='dropped'))
            os.unlink(self.mnt('outbox', 'dropped.eml'))
        finally:
            os.close(fd)
        self.assertEqual(self.gw.record_ids(), before)

    def test_inbox_many_and_cur(self):
        """300 messages list completely (readdir offsets); a file moved to cur/ stays visible"""
        with smtplib.SMTP('127.0.0.1', self.gw.port, timeout=30) as s:
            s.ehlo('client.example')
            for i in range(300):
                s.sendmail('alice@example.org', ['many@localhost'],
                           'Subject: many %d\r\n\r\nbody %d\r\n' % (i, i))
        spool_names = self.gw.mailbox_new('many')
        self.assertEqual(len(spool_names), 300)
        listed = os.listdir(self.mnt('inbox', 'many'))
        self.assertEqual(len(listed), len(set(listed)), 'duplicate names in readdir')
        self.assertEqual(sorted(listed), spool_names)
        # A mail reader moves a message to cur/ with an info suffix.
        name = spool_names[0]
        os.rename(self.gw.path('mail', 'many', 'new', name),
                  self.gw.path('mail', 'many', 'cur', name + ':2,S'))
        listed = os.listdir(self.mnt('inbox', 'many'))
        self.assertIn(name + ':2,S', listed)
        self.assertNotIn(name, listed)
        with open(self.mnt('inbox', 'many', name + ':2,S'), 'rb') as f:
            self.assertIn(b'Subject: many ', f.read())

    def test_outbox_cp_p_truncate_dup(self):
        """cp -p works (setattr); truncate before close; a dup'ed fd submits once"""
        src = os.path.join(self.gw.dir, 'src-p.eml')
        with open(src, 'wb') as f:
            f.write(message(subject='cp p'))
        os.chmod(src, 0o600)
        os.utime(src, (1000000000, 1000000000))
        before = self.gw.record_ids()
        r = subprocess.run(['cp', '-p', src, self.mnt('outbox', 'p.eml')], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, 'cp -p into outbox/: %s' % r.stderr)
        self.assertEqual(len(self.gw.record_ids() - before), 1)
        # Junk first, then truncate and write the real message.
        before = self.gw.record_ids()
        fd = os.open(self.mnt('outbox', 't.eml'), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, b'junk without any header colon\n' * 10)
            os.ftruncate(fd, 0)
            os.pwrite(fd, message(subject='truncated first', bcc=None), 0)
            fd2 = os.dup(fd)
            os.close(fd2)		# flush: submits
            after_first = self.gw.record_ids() - before
            self.assertEqual(len(after_first), 1, 'first close of a dup did not submit')
        finally:
            os.close(fd)		# flush again with nothing new: no second submission
        new = self.gw.record_ids() - before
        self.assertEqual(new, after_first, 'a dup\'ed fd submitted twice')
        msgid = new.pop()
        with open(self.mnt('queue', msgid), 'rb') as f:
            data = f.read()
        self.assertNotIn(b'junk', data)
        self.assertIn(b'Subject: truncated first\n', data)
        # pread at an offset inside the data of queue/<id>.
        fd = os.open(self.mnt('queue', msgid), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 20, 7), data[7:27])
            self.assertEqual(os.pread(fd, 100, len(data) - 5), data[-5:])
            self.assertEqual(os.pread(fd, 10, len(data) + 10), b'')
        finally:
            os.close(fd)

    def test_readonly_dirs(self):
        """queue/, sent/, failed/: create, write, unlink, rename, mkdir are refused"""
        msgid = self.submit(message(subject='read only'), 'ro.eml')
        for d in ('queue', 'sent', 'failed'):
            with self.assertRaises(OSError, msg='create in %s/' % d) as cm:
                os.open(self.mnt(d, 'x'), os.O_WRONLY | os.O_CREAT, 0o644)
            self.assertIn(cm.exception.errno, REFUSED, 'create in %s/' % d)
            with self.assertRaises(OSError, msg='mkdir in %s/' % d) as cm:
                os.mkdir(self.mnt(d, 'sub'))
            self.assertIn(cm.exception.errno, REFUSED)
        for name in (msgid, msgid + '.status'):
            p = self.mnt('queue', name)
            with self.assertRaises(OSError, msg='open for write ' + name) as cm:
                os.open(p, os.O_WRONLY)
            self.assertIn(cm.exception.errno, REFUSED)
            with self.assertRaises(OSError, msg='unlink ' + name) as cm:
                os.unlink(p)
            self.assertIn(cm.exception.errno, REFUSED)
            with self.assertRaises(OSError, msg='rename ' + name) as cm:
                os.rename(p, self.mnt('queue', 'renamed'))
            self.assertIn(cm.exception.errno, REFUSED)
        self.assertEqual(self.gw.find_record(msgid)[0] in ('queue', 'active'), True)


class Restart(unittest.TestCase):
    """kill -9 of the fs daemon costs nothing."""

    def test_kill9_and_restart(self):
        """kill -9 spoolgate-fs, restart it: inbox and queue are all there and equal"""
        gw = harness.Instance('fs-restart')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        with smtplib.SMTP('127.0.0.1', gw.port, timeout=15) as s:
            for i in range(3):
                s.sendmail('alice@example.org', ['bob@localhost'],
                           'Subject: restart %d\r\n\r\nbody %d\r\n' % (i, i))
        src = os.path.join(gw.dir, 'src.eml')
        with open(src, 'wb') as f:
            f.write(message(subject='before kill'))
        r = subprocess.run(['cp', src, os.path.join(gw.mnt, 'outbox', 'k.eml')],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

        def snapshot():
            out = {}
            for d in ('inbox/bob', 'queue'):
                for n in sorted(os.listdir(os.path.join(gw.mnt, d))):
                    with open(os.path.join(gw.mnt, d, n), 'rb') as f:
                        out[d + '/' + n] = f.read()
            return out
        before = snapshot()
        self.assertEqual(len([k for k in before if k.startswith('inbox/')]), 3)
        self.assertEqual(len([k for k in before if k.startswith('queue/')]), 2)
        gw.kill('fs', signal.SIGKILL)
        log('  killed -9; mounted afterwards: %s' % harness.is_mounted(gw.mnt))
        gw.start_fs()
        after = snapshot()
        self.assertEqual(sorted(after), sorted(before))
        for k in before:
            if k.endswith('.status'):
                continue		# attempts may have moved on
            self.assertEqual(after[k], before[k], k)
        # And it works: a new submission after the restart.
        r = subprocess.run(['cp', src, os.path.join(gw.mnt, 'outbox', 'k2.eml')],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len([n for n in os.listdir(os.path.join(gw.mnt, 'queue'))
                              if not n.endswith('.status')]), 2)
        # SIGTERM unmounts and exits 0.
        self.assertEqual(gw.kill('fs', signal.SIGTERM), 0, 'fs exit status after SIGTERM')
        self.assertFalse(harness.is_mounted(gw.mnt), 'still mounted after SIGTERM')


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
