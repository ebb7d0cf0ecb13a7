#!/usr/bin/python3
"""test_fs - the spoolgate-fs mount.

inbox/<mailbox>/<message> is the Maildir file, byte for byte, and `rm`
deletes it; inbox/ takes no new files; a message removed or moved while
open can still be fstat'ed and read (os.fstat, `cat <&3`, `tail -f`).
outbox/: cp of a complete RFC 5322 message submits it at close
(queue/<id>.status lists every To/Cc/Bcc recipient, queue/<id> has no Bcc
header).  A file that will be refused fails at the write(2) that completes
its header section: without recipients EDESTADDRREQ, a malformed address
EINVAL, not a message EBADMSG, past max_message_size EFBIG; nothing is
queued, and failed/<id> keeps what was written with a .status that says
"rejected at submission" and why.  Through real shells: printf, echo,
{ ...; } > f exit non-zero with the errno text; touch of a new file fails
with ENODATA; python's open().write() without close leaves the refusal in
failed/.  After a submission the name stays: install, cp && ls, cp -p,
chmod, touch -r work and send nothing more; >> and 'a'/'r+' fail with
EBUSY; cp again (O_TRUNC) is a new message; rm removes only the name.
{ cat a; cat b; } > f is one message; a second writer gets EBUSY.
queue/, sent/, failed/ are read-only.  The daemon can be killed -9 and
restarted and everything is still there.  stat of an outbox/ file (its
attributes are cached) follows each write, truncation, chmod and touch
at once.  A draft lives in memory (a
memfd the daemon holds) until it passes 1 MiB, then in an unlinked
temporary of spool/tmp/, and is queued whole; on a spool whose disk is
nearly full it is written to tmp/ from the start, so that a full disk
fails the write itself, which a shell reports (bash ignores the close of
a redirection).  Skipped (77) where FUSE is not
available.

The smarthost is a port where nothing listens and retry_min is large, so
what is submitted stays queued.
"""

import ctypes
import errno
import os
import pwd
import signal
import smtplib
import struct
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


def first_line_of(path):
    """The first line of a spool file, or None when it is not there."""
    try:
        with open(path, 'rb') as f:
            return f.readline()
    except FileNotFoundError:
        return None


def write_and_close(path, data):
    """os-level create/write/close; returns None or the errno of the close
    (a failing write raises)."""
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


def write_refused(path, data):
    """create, write, close: (errno of the write, errno of the close);
    None where the call succeeded."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    werr = cerr = None
    try:
        os.write(fd, data)
    except OSError as e:
        werr = e.errno
    try:
        os.close(fd)
    except OSError as e:
        cerr = e.errno
    return werr, cerr


def as_written(queued):
    """The queued data without what the gateway puts before the message's
    own first field, From: in these tests (Received:, and Date: and
    Message-ID: where the file had none)."""
    at = queued.find(b'\nFrom: ') + 1
    added = queued[:at]
    if not at or not added.startswith(b'Received: by '):
        raise AssertionError('queued data does not start with the trace header: %r' % queued[:200])
    for line in added.split(b'\n')[:-1]:
        if not line[:1] in (b' ', b'\t') and not line.startswith((b'Received: ', b'Date: ',
                                                                   b'Message-ID: ')):
            raise AssertionError('unexpected line before From: %r' % line)
    return queued[at:]


def sh(cmd, **kw):
    """bash -c cmd: the CompletedProcess (text)."""
    return subprocess.run(['bash', '-c', cmd], capture_output=True, text=True, timeout=30, **kw)


class DirNames:
    """The names created, moved or removed in one directory (inotify, through
    ctypes: the standard library has no binding), read without waiting."""
    IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0 or self.libc.inotify_add_watch(
                self.fd, os.fsencode(path),
                self.IN_MOVED_FROM | self.IN_MOVED_TO | self.IN_CREATE | self.IN_DELETE) < 0:
            raise OSError(ctypes.get_errno(), 'inotify on %s' % path)

    def names(self):
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            at = 0
            while at < len(buf):
                _, _, _, n = struct.unpack_from('iIII', buf, at)
                out.append(buf[at + 16:at + 16 + n].rstrip(b'\0').decode())
                at += 16 + n

    def close(self):
        os.close(self.fd)


def cp_to_outbox(test, gw, data, name):
    """cp a file holding data into gw's outbox/ as name; the test fails if cp does."""
    src = os.path.join(gw.dir, 'src-' + name)
    with open(src, 'wb') as f:
        f.write(data)
    r = subprocess.run(['cp', src, os.path.join(gw.mnt, 'outbox', name)], capture_output=True,
                       text=True, timeout=30)
    test.assertEqual(r.returncode, 0, 'cp into outbox/ failed: %s' % r.stderr)


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

    def queued_ids(self):
        """Records the relay sees: queue/, active/, sent/ (not failed/)."""
        return {i for i in self.gw.record_ids() if not os.path.exists(self.gw.path('failed', i))}

    def failed_ids(self):
        return set(self.gw.listdir('failed'))

    def assert_kept_in_failed(self, before, name, errname, reply, data, upto=None):
        """One new failed/<id> keeps data, its .status says why; returns the record.
        upto: the writer may have written in pieces, and failed/ keeps what
        came until the refusal: data up to at least that many bytes."""
        new = self.failed_ids() - before
        self.assertEqual(len(new), 1, 'expected one new record in failed/, got %s' % new)
        fid = new.pop()
        self.assertIn(fid + '.status', os.listdir(self.mnt('failed')))
        with open(self.mnt('failed', fid + '.status')) as f:
            status = f.read()
        rec = parse_record(status)
        self.assertTrue(rec.get('rejected', '').startswith(
            '%s %s rejected at submission: ' % (reply, errname)), status)
        self.assertEqual(rec.get('origin'), 'fs outbox/%s uid=%d user=%s' % (
            name, os.getuid(), pwd.getpwuid(os.getuid()).pw_name), status)
        self.assertEqual(rec['rcpt'], [], status)
        with open(self.mnt('failed', fid), 'rb') as f:
            kept = f.read()
        if upto is None:
            self.assertEqual(kept, data)
        else:
            self.assertTrue(data.startswith(kept) and len(kept) >= upto, kept)
        self.assertIn('event=outbox-rejected name=%s errno=%s' % (name, errname),
                      self.gw.read_log('fs'))
        self.assertIn('id=%s' % fid, self.gw.read_log('fs'))
        return rec

    def submit(self, data, name='msg.eml'):
        """cp a file into outbox/; returns the id of the new record."""
        before = self.gw.record_ids()
        cp_to_outbox(self, self.gw, data, name)
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
        # Same bytes as the spool holds from data-offset.
        self.assertEqual(self.gw.message_of(msgid), queued)
        # The name stays after the submission, with what was submitted.
        self.assertIn('msg.eml', os.listdir(self.mnt('outbox')), 'submitted name vanished at close')
        self.assertEqual(os.stat(self.mnt('outbox', 'msg.eml')).st_size, len(data))
        log('  submitted %s: %d rcpts, %d bytes, no Bcc' % (msgid, len(rcpts), len(queued)))

    def test_outbox_commit_names_nothing_in_tmp(self):
        """a drop's data and record have no name until they are published (O_TMPFILE)"""
        watch = DirNames(self.gw.path('tmp'))
        self.addCleanup(watch.close)
        # two small drops (one inline file each) and one past the 64 KiB
        # buffer (a data file and a record)
        bodies = [message(subject='unnamed 0'), message(subject='unnamed 1'),
                  message(subject='unnamed 2', body=('x' * 99 + '\n') * 700)]
        ids = [self.submit(b, 'unnamed%d.eml' % i) for i, b in enumerate(bodies)]
        for msgid, body in zip(ids, bodies):
            self.assertIsNotNone(self.gw.find_record(msgid)[0])
            self.assertTrue(self.gw.message_of(msgid).endswith(body.split(b'\n\n', 1)[1]))
        # a small drop's one file is linked as data/<id> only by the relay's
        # first rewrite of its record (a relay runs here): that file starts
        # with the record; a data file written as such, with the message
        firsts = [first_line_of(self.gw.path('data', i)) for i in ids]
        self.assertIn(firsts[0], (None, b'spoolgate-envelope: 1\n'))
        self.assertIn(firsts[1], (None, b'spoolgate-envelope: 1\n'))
        self.assertTrue(firsts[2].startswith(b'Received: '), firsts[2])
        # the relay's record rewrites use tmp/<id>@<host>,<pid>.new|.old: not ours
        self.assertEqual([n for n in watch.names() if '@' not in n], [])
        self.assertNotIn('event=spool-unnamed', self.gw.read_log('fs'))

    def test_outbox_no_recipient(self):
        """no To/Cc/Bcc: the write fails with EDESTADDRREQ, so does close; kept in failed/"""
        before = self.queued_ids()
        failed_before = self.failed_ids()
        data = message(to=None, cc=None, bcc=None, subject='no rcpt')
        werr, cerr = write_refused(self.mnt('outbox', 'norcpt.eml'), data)
        self.assertEqual((werr, cerr), (errno.EDESTADDRREQ, errno.EDESTADDRREQ),
                         'write/close returned %s/%s' % (errno.errorcode.get(werr, werr),
                                                         errno.errorcode.get(cerr, cerr)))
        self.assertEqual(self.queued_ids(), before)
        self.assert_kept_in_failed(failed_before, 'norcpt.eml', 'EDESTADDRREQ', '554 5.5.1', data)
        self.assertNotIn('norcpt.eml', os.listdir(self.mnt('outbox')), 'a refused name stays')
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
        self.assertEqual(self.queued_ids(), before)

    def test_outbox_bad_address(self):
        """a malformed address: the write fails with EINVAL, nothing is queued, failed/ has it"""
        before = self.queued_ids()
        failed_before = self.failed_ids()
        data = message(to='bob@bad..domain', cc=None, bcc=None, subject='bad')
        werr, cerr = write_refused(self.mnt('outbox', 'bad.eml'), data)
        self.assertEqual((werr, cerr), (errno.EINVAL, errno.EINVAL))
        self.assertEqual(self.queued_ids(), before)
        self.assert_kept_in_failed(failed_before, 'bad.eml', 'EINVAL', '553 5.1.3', data)

    def test_outbox_not_a_message(self):
        """a header line without a colon: the write fails with EBADMSG, failed/ has it"""
        before = self.queued_ids()
        failed_before = self.failed_ids()
        data = b'this is not a header\nTo: bob@example.net\n\nbody\n'
        werr, cerr = write_refused(self.mnt('outbox', 'junk.eml'), data)
        self.assertEqual((werr, cerr), (errno.EBADMSG, errno.EBADMSG))
        self.assertEqual(self.queued_ids(), before)
        self.assert_kept_in_failed(failed_before, 'junk.eml', 'EBADMSG', '554 5.6.0', data)

    def test_outbox_refused_only_at_close(self):
        """no empty line: the header is only known at close, which fails; failed/ has it"""
        before = self.queued_ids()
        failed_before = self.failed_ids()
        data = b'From: alice@example.org\nSubject: headers only, no recipient\n'
        werr, cerr = write_refused(self.mnt('outbox', 'late.eml'), data)
        self.assertEqual((werr, cerr), (None, errno.EDESTADDRREQ))
        self.assertEqual(self.queued_ids(), before)
        self.assert_kept_in_failed(failed_before, 'late.eml', 'EDESTADDRREQ', '554 5.5.1', data)

    def test_outbox_too_big(self):
        """writing past max_message_size fails with EFBIG; nothing queued; failed/ keeps the first max bytes"""
        before = self.queued_ids()
        failed_before = self.failed_ids()
        head = message(subject='big', body='')
        body = (b'x' * 999 + b'\n') * (MAX_SIZE // 1000 + 1)
        fd = os.open(self.mnt('outbox', 'big.eml'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, head)
            pos = 0
            with self.assertRaises(OSError) as cm:
                while True:		# the kernel splits a big write: the last part fails
                    pos += os.write(fd, body[pos:])
            self.assertEqual(cm.exception.errno, errno.EFBIG)
            with self.assertRaises(OSError) as cm:
                os.write(fd, b'more\n')
            self.assertEqual(cm.exception.errno, errno.EFBIG, 'a write after EFBIG')
        finally:
            with self.assertRaises(OSError) as cm:
                os.close(fd)
            self.assertEqual(cm.exception.errno, errno.EFBIG, 'close after EFBIG')
        self.assertEqual(self.queued_ids(), before)
        want = (head + body)[:MAX_SIZE]
        rec = self.assert_kept_in_failed(failed_before, 'big.eml', 'EFBIG', '552 5.3.4', want)
        self.assertIn('the first %d bytes are kept' % MAX_SIZE, rec['rejected'])

    def test_outbox_open_file_listed(self):
        """a file being written shows in outbox/, and still after its submission; rm removes the name only"""
        before = self.queued_ids()
        fd = os.open(self.mnt('outbox', 'open.eml'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, message(subject='listed while open'))
            self.assertIn('open.eml', os.listdir(self.mnt('outbox')))
        finally:
            os.close(fd)
        self.assertIn('open.eml', os.listdir(self.mnt('outbox')))
        new = self.queued_ids() - before
        self.assertEqual(len(new), 1)
        os.unlink(self.mnt('outbox', 'open.eml'))
        self.assertNotIn('open.eml', os.listdir(self.mnt('outbox')))
        self.assertEqual(self.gw.find_record(new.pop())[0] in ('queue', 'active'), True,
                         'rm of the submitted name removed the queued message')

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
        """300 messages list completely (readdir offsets) with their attributes; a file moved to cur/ stays visible"""
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
        # ls -l: the attributes came with the listing (readdirplus) and are what the spool has
        for entry in os.scandir(self.mnt('inbox', 'many')):
            disk = os.stat(self.gw.path('mail', 'many', 'new', entry.name))
            st = entry.stat(follow_symlinks=False)
            self.assertEqual((st.st_size, int(st.st_mtime), st.st_mode & 0o7777),
                             (disk.st_size, int(disk.st_mtime), disk.st_mode & 0o5555), entry.name)
            self.assertEqual(st.st_ino, entry.inode(), entry.name)
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
            os.close(fd2)		# a copy: the message goes on
            self.assertEqual(self.gw.record_ids(), before, 'the close of a dup submitted')
        finally:
            os.close(fd)		# the last descriptor of the writer: submits
        new = self.gw.record_ids() - before
        self.assertEqual(len(new), 1, 'expected one submission, got %s' % new)
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

    # ---------------------------------------------------- through real shells

    def src_file(self, name, data):
        src = os.path.join(self.gw.dir, 'src-' + name)
        with open(src, 'wb') as f:
            f.write(data)
        return src

    def test_shell_printf_refused(self):
        """bash printf > outbox/x without a recipient: exits 1 with the errno text; failed/ has it"""
        failed_before = self.failed_ids()
        before = self.queued_ids()
        r = sh("printf 'From: a@localhost\\nSubject: x\\n\\nb\\n' > %s" % self.mnt('outbox', 'x'))
        self.assertNotEqual(r.returncode, 0, 'printf > outbox/x exited 0')
        self.assertIn('Destination address required', r.stderr)
        self.assertEqual(self.queued_ids(), before)
        self.assert_kept_in_failed(failed_before, 'x', 'EDESTADDRREQ', '554 5.5.1',
                                   b'From: a@localhost\nSubject: x\n\nb\n', upto=30)

    def test_shell_echo_refused(self):
        """bash echo > outbox/e (an empty first line): exits 1 with 'Bad message'"""
        failed_before = self.failed_ids()
        r = sh('echo > %s' % self.mnt('outbox', 'e'))
        self.assertNotEqual(r.returncode, 0, 'echo > outbox/e exited 0')
        self.assertIn('Bad message', r.stderr)
        self.assert_kept_in_failed(failed_before, 'e', 'EBADMSG', '554 5.6.0', b'\n')

    def test_shell_group_refused(self):
        """{ printf; printf; } > outbox/g without a recipient: exits 1"""
        failed_before = self.failed_ids()
        r = sh("{ printf 'From: a@localhost\\n'; printf 'Subject: x\\n\\nb\\n'; } > %s"
               % self.mnt('outbox', 'g'))
        self.assertNotEqual(r.returncode, 0, '{ ...; } > outbox/g exited 0')
        self.assertIn('Destination address required', r.stderr)
        self.assert_kept_in_failed(failed_before, 'g', 'EDESTADDRREQ', '554 5.5.1',
                                   b'From: a@localhost\nSubject: x\n\nb\n', upto=30)

    def test_shell_group_with_children(self):
        """{ cat hdr; cat body; } > outbox/f: a child's close ends nothing; one whole message"""
        hdr = message(subject='group of children', body='', bcc=None)
        body = b'first line of the body\nlast line\n'
        h, b = self.src_file('hdr', hdr), self.src_file('body', body)
        before = self.queued_ids()
        r = sh('{ cat %s; /bin/echo between; cat %s; } > %s' % (h, b, self.mnt('outbox', 'grp.eml')))
        self.assertEqual(r.returncode, 0, r.stderr)
        new = self.queued_ids() - before
        self.assertEqual(len(new), 1, 'expected one message, got %s' % new)
        with open(self.mnt('queue', new.pop()), 'rb') as f:
            self.assertEqual(as_written(f.read()), hdr + b'between\n' + body)

    def test_shell_exec_fd(self):
        """exec 3> f; echo ... >&3 line by line; exec 3>&-: one whole message"""
        before = self.queued_ids()
        f = self.mnt('outbox', 'fd3.eml')
        r = sh('exec 3> %s; echo "From: a@localhost" >&3; echo "To: bob@localhost" >&3; '
               'echo >&3; echo "line 1" >&3; echo "line 2" >&3; exec 3>&-' % f)
        self.assertEqual(r.returncode, 0, r.stderr)
        new = self.queued_ids() - before
        self.assertEqual(len(new), 1, 'expected one message, got %s' % new)
        with open(self.mnt('queue', new.pop()), 'rb') as fh:
            self.assertEqual(as_written(fh.read()),
                             b'From: a@localhost\nTo: bob@localhost\n\nline 1\nline 2\n')

    def test_touch_empty(self):
        """touch outbox/t: close fails with ENODATA, logged; nothing queued, nothing in failed/"""
        before, failed_before = self.queued_ids(), self.failed_ids()
        r = subprocess.run(['touch', self.mnt('outbox', 't')], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0, 'touch of a new outbox file exited 0')
        self.assertIn('No data available', r.stderr)
        self.assertEqual(self.queued_ids(), before)
        self.assertEqual(self.failed_ids(), failed_before)
        self.assertNotIn('t', os.listdir(self.mnt('outbox')))
        self.assertIn('event=outbox-rejected name=t errno=ENODATA', self.gw.read_log('fs'))
        # a write of nothing is empty too; close(2) says so
        fd = os.open(self.mnt('outbox', 't0'), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b'')
        with self.assertRaises(OSError) as cm:
            os.close(fd)
        self.assertEqual(cm.exception.errno, errno.ENODATA)

    def test_python_write_without_close(self):
        """open(p,'w').write(...) without close: the write at exit fails; failed/ keeps it"""
        data = b'From: a@localhost\nSubject: py\n\nno recipient\n'
        before = self.queued_ids()
        code = "open(%r, 'w').write(%r)" % (self.mnt('outbox', 'py.eml'), data.decode())
        # Python reports an error of a close it does at exit only in dev mode.
        r = subprocess.run([sys.executable, '-X', 'dev', '-c', code], capture_output=True,
                           text=True, timeout=30)
        self.assertIn('Destination address required', r.stderr)
        failed_before = self.failed_ids()
        r = subprocess.run([sys.executable, '-c', code.replace('py.eml', 'py2.eml')],
                           capture_output=True, text=True, timeout=30)
        log('  python without close: exit %d, stderr %r' % (r.returncode, r.stderr.strip()))
        self.assertEqual(self.queued_ids(), before)
        self.assert_kept_in_failed(failed_before, 'py2.eml', 'EDESTADDRREQ', '554 5.5.1', data)

    def test_append_after_submit(self):
        """printf > f; printf >> f: the >> fails with EBUSY, one message without the fragment"""
        before = self.queued_ids()
        f = self.mnt('outbox', 'app.eml')
        r = sh("printf 'From: a@localhost\\nTo: bob@localhost\\nSubject: s\\n\\n' > %s" % f)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = sh("printf 'body\\n' >> %s" % f)
        self.assertNotEqual(r.returncode, 0, '>> on a submitted name exited 0')
        self.assertIn('Device or resource busy', r.stderr)
        for mode in ('a', 'r+'):
            with self.assertRaises(OSError, msg='open mode %s' % mode) as cm:
                open(f, mode)
            self.assertEqual(cm.exception.errno, errno.EBUSY)
        self.assertIn('event=outbox-open-refused name=app.eml errno=EBUSY', self.gw.read_log('fs'))
        new = self.queued_ids() - before
        self.assertEqual(len(new), 1, 'expected one message, got %s' % new)
        with open(self.mnt('queue', new.pop()), 'rb') as fh:
            self.assertNotIn(b'body', fh.read())

    def test_stat_follows_each_change(self):
        """the cached attributes of an outbox/ file follow each write, truncation, chmod and touch at once"""
        p = self.mnt('outbox', 'attrs.eml')
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            self.assertEqual(os.stat(p).st_size, 0)
            self.assertEqual(os.fstat(fd).st_size, 0)
            os.write(fd, b'From: alice@example.org\n')
            self.assertEqual(os.stat(p).st_size, 24)
            os.ftruncate(fd, 10)
            self.assertEqual(os.stat(p).st_size, 10)
            os.ftruncate(fd, 0)
            data = message(subject='attrs')
            os.pwrite(fd, data, 0)
            self.assertEqual(os.fstat(fd).st_size, len(data))
            os.chmod(p, 0o640)
            self.assertEqual(os.stat(p).st_mode & 0o777, 0o640)
            os.utime(p, (1000000000, 1000000000))
            self.assertEqual(os.stat(p).st_mtime, 1000000000)
            os.pwrite(fd, b'more\n', len(data))
            st = os.stat(p)
            self.assertEqual(st.st_size, len(data) + 5)
            self.assertGreater(st.st_mtime, 1000000000, 'a write left the mtime cached')
        finally:
            os.close(fd)
        self.assertEqual(os.stat(p).st_size, len(data) + 5)

    def test_install_after_close(self):
        """install -m 644 f outbox/ exits 0 and sends once; the name shows the mode"""
        src = self.src_file('inst.eml', message(subject='install'))
        os.chmod(src, 0o600)
        before = self.queued_ids()
        r = subprocess.run(['install', '-m', '644', src, self.mnt('outbox') + '/'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, 'install: %s' % r.stderr)
        self.assertEqual(len(self.queued_ids() - before), 1)
        st = os.stat(self.mnt('outbox', os.path.basename(src)))
        self.assertEqual(st.st_mode & 0o7777, 0o644)

    def test_cp_then_ls_and_read(self):
        """cp f outbox/ && ls outbox/f; cat shows what was submitted; cp -p, chmod, touch -r send nothing"""
        data = message(subject='cp ls')
        src = self.src_file('cpls.eml', data)
        os.utime(src, (1000000000, 1000000000))
        dst = self.mnt('outbox', os.path.basename(src))
        before = self.queued_ids()
        r = sh('cp %s %s/ && ls %s' % (src, self.mnt('outbox'), dst))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), dst)
        with open(dst, 'rb') as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(len(self.queued_ids() - before), 1)
        before = self.queued_ids()
        r = sh('chmod 600 %s && touch -r %s %s' % (dst, src, dst))
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(dst)
        self.assertEqual(st.st_mode & 0o7777, 0o600)
        self.assertEqual(int(st.st_mtime), 1000000000)
        self.assertEqual(self.queued_ids(), before, 'chmod/touch -r sent again')
        # cp -p: a new message (O_TRUNC), then the attributes on the closed name
        r = subprocess.run(['cp', '-p', src, dst], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, 'cp -p: %s' % r.stderr)
        self.assertEqual(len(self.queued_ids() - before), 1)
        # cp again over the submitted name: a new whole file is a new message
        other = message(subject='cp again')
        src2 = self.src_file('other.eml', other)
        before = self.queued_ids()
        r = subprocess.run(['cp', src2, dst], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        new = self.queued_ids() - before
        self.assertEqual(len(new), 1)
        with open(dst, 'rb') as f:
            self.assertEqual(f.read(), other)
        with open(self.mnt('queue', new.pop()), 'rb') as f:
            self.assertIn(b'Subject: cp again', f.read())

    def test_two_writers(self):
        """a second open for writing while one is open: EBUSY; dup and fork are one writer"""
        before = self.queued_ids()
        p = self.mnt('outbox', 'same.eml')
        data = message(subject='one writer', bcc=None)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data[:40])
            for flags in (os.O_WRONLY, os.O_WRONLY | os.O_TRUNC, os.O_RDWR | os.O_APPEND):
                with self.assertRaises(OSError, msg='second writer flags %o' % flags) as cm:
                    os.open(p, flags)
                self.assertEqual(cm.exception.errno, errno.EBUSY)
            r = sh('bash -c "printf junk > %s"' % p)
            self.assertIn('Device or resource busy', r.stderr)
            fd2 = os.dup(fd)
            os.write(fd2, data[40:60])
            os.close(fd2)
            # a child that inherited the descriptor writes, then exits (its close ends nothing)
            r = subprocess.run(['bash', '-c', 'cat >&%d' % fd], input=data[60:], pass_fds=(fd,),
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            os.close(fd)
        new = self.queued_ids() - before
        self.assertEqual(len(new), 1, 'expected one message, got %s' % new)
        with open(self.mnt('queue', new.pop()), 'rb') as f:
            self.assertEqual(as_written(f.read()), data)

    # ------------------------------------------------------ open, then moved

    def test_fstat_after_rm(self):
        """an inbox message rm'd while open: fstat, read, cat <&3 and tail -f work"""
        msgid = self.send_smtp(subject='fstat after rm')
        name = self.gw.find_mail('bob', msgid)
        p = self.mnt('inbox', 'bob', name)
        want = self.gw.read_mail('bob', name)
        fd = os.open(p, os.O_RDONLY)
        try:
            os.unlink(p)
            self.assertNotIn(name, os.listdir(self.mnt('inbox', 'bob')))
            st = os.fstat(fd)
            self.assertEqual(st.st_size, len(want))
            self.assertEqual(os.read(fd, 1 << 16), want)
        finally:
            os.close(fd)
        # cat <&3 (cat fstat's its input)
        msgid = self.send_smtp(subject='cat after rm')
        name = self.gw.find_mail('bob', msgid)
        p = self.mnt('inbox', 'bob', name)
        want = self.gw.read_mail('bob', name)
        r = subprocess.run(['bash', '-c', 'exec 3<"$1"; rm "$1"; cat <&3', 'sh', p],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, want)
        # tail -f on a descriptor of a removed message keeps going
        msgid = self.send_smtp(subject='tail after rm')
        name = self.gw.find_mail('bob', msgid)
        p = self.mnt('inbox', 'bob', name)
        fd = os.open(p, os.O_RDONLY)
        os.unlink(p)
        errf = os.path.join(self.gw.dir, 'tail.err')
        with open(errf, 'wb') as err:
            tail = subprocess.Popen(['tail', '-n', '+1', '-f'], stdin=fd, stdout=subprocess.PIPE,
                                    stderr=err)
        os.close(fd)
        try:
            got = b''
            while b'body of tail after rm' not in got:
                chunk = tail.stdout.read1(4096)	# returns b'' only when tail has exited
                if not chunk:
                    break
                got += chunk
            with open(errf, 'rb') as err:
                errtext = err.read()
            self.assertIn(b'body of tail after rm', got, errtext)
            self.assertIsNone(tail.poll(), 'tail -f stopped: %r' % errtext)
            self.assertEqual(errtext, b'')
        finally:
            tail.kill()
            tail.wait(timeout=10)

    def test_fstat_after_move(self):
        """queue/<id> open while its record moves to failed/: fstat and read still work"""
        data = message(subject='moved while open')
        msgid = self.submit(data, 'mv.eml')
        fd = os.open(self.mnt('queue', msgid), os.O_RDONLY)
        try:
            want = os.pread(fd, 1 << 16, 0)
            # the relay tries it at once and puts it back (nothing listens): then move it
            harness.wait_until(lambda: 'attempts: 1\n' in (self.gw.find_record(msgid)[1] or '')
                               and self.gw.find_record(msgid)[0] == 'queue', 15, 'first attempt')
            os.rename(self.gw.path('queue', msgid), self.gw.path('failed', msgid))
            st = os.fstat(fd)
            self.assertEqual(st.st_size, len(want))
            self.assertEqual(os.pread(fd, 1 << 16, 0), want)
        finally:
            os.close(fd)

    def test_cache_new_mail_listed(self):
        """after a listing and stats the kernel may cache, mail delivered by SMTP is listed at once"""
        first = self.gw.find_mail('cached', self.send_smtp('cached', 'cached first'))
        box = self.mnt('inbox', 'cached')
        listed = os.listdir(box)
        self.assertEqual(listed, [first])
        for name in listed:
            os.stat(os.path.join(box, name))
            with open(os.path.join(box, name), 'rb') as f:
                f.read()
        with self.assertRaises(FileNotFoundError):
            os.stat(os.path.join(box, 'not-yet'))
        second = self.gw.find_mail('cached', self.send_smtp('cached', 'cached second'))
        # no wait: the 250 came after the message was in new/
        self.assertEqual(sorted(os.listdir(box)), sorted([first, second]))
        with open(os.path.join(box, second), 'rb') as f:
            self.assertEqual(f.read(), self.gw.read_mail('cached', second))

    def test_cache_spool_changes_seen(self):
        """cached messages: rm, a move and a replacement made in the spool show promptly"""
        names = [self.gw.find_mail('spoolside', self.send_smtp('spoolside', 'spool side %d' % i))
                 for i in range(3)]
        box = self.mnt('inbox', 'spoolside')
        for name in names:		# cached: names, attributes, pages
            with open(os.path.join(box, name), 'rb') as f:
                f.read()
            os.stat(os.path.join(box, name))
        gone, moved, replaced = names
        os.unlink(self.gw.path('mail', 'spoolside', 'new', gone))
        os.rename(self.gw.path('mail', 'spoolside', 'new', moved),
                  self.gw.path('mail', 'spoolside', 'cur', moved + ':2,S'))
        new_bytes = b'Subject: replaced in the spool\n\na longer body than before, read anew\n'
        tmp = self.gw.path('mail', 'spoolside', 'tmp', 'replacement')
        with open(tmp, 'wb') as f:
            f.write(new_bytes)
        os.rename(tmp, self.gw.path('mail', 'spoolside', 'new', replaced))
        for name in (gone, moved):
            harness.wait_until(lambda: not os.path.exists(os.path.join(box, name)), 10,
                               'stat of %s to fail after it left new/ in the spool' % name)
        self.assertEqual(sorted(os.listdir(box)), sorted([moved + ':2,S', replaced]))
        harness.wait_until(lambda: os.stat(os.path.join(box, replaced)).st_size == len(new_bytes),
                           10, 'the size of the replaced message')
        with open(os.path.join(box, replaced), 'rb') as f:
            self.assertEqual(f.read(), new_bytes)
        # a queued message whose record moves to failed/ in the spool
        msgid = self.submit(message(subject='record moves'), 'moves.eml')
        # the relay tries it at once and puts it back (nothing listens): then move it
        harness.wait_until(lambda: 'attempts: 1\n' in (self.gw.find_record(msgid)[1] or '')
                           and self.gw.find_record(msgid)[0] == 'queue', 15, 'first attempt')
        with open(self.mnt('queue', msgid), 'rb') as f:
            f.read()
        os.stat(self.mnt('queue', msgid))
        os.rename(self.gw.path('queue', msgid), self.gw.path('failed', msgid))
        harness.wait_until(lambda: not os.path.exists(self.mnt('queue', msgid)), 10,
                           'queue/%s to go after its record moved to failed/' % msgid)
        self.assertTrue(os.path.exists(self.mnt('failed', msgid)))

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


class SlowSync(unittest.TestCase):
    """spoolgate-fs with an LD_PRELOAD shim that makes fdatasync and fsync
    slow (tests/shim/slow_sync.c): closes in outbox/ that sync do not hold
    up other requests, and concurrent closes share their directory syncs."""

    WRITERS = 4
    SLOW_MS = 1500

    def test_closes_sync_while_others_are_served(self):
        """4 cp into outbox/ syncing: listings are served meanwhile; the closes share batches"""
        shim = os.environ.get('SPOOLGATE_SLOW_SYNC_SHIM', '')
        if not os.path.exists(shim):
            self.skipTest('SPOOLGATE_SLOW_SYNC_SHIM not built (run through meson test)')
        gw = harness.Instance('fs-slow')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        with smtplib.SMTP('127.0.0.1', gw.port, timeout=15) as c:
            c.sendmail('alice@example.org', ['bob@localhost'], b'Subject: there\r\n\r\nbody\r\n')
        gw.start_fs(env={'LD_PRELOAD': shim, 'SPOOLGATE_SLOW_FDATASYNC_MS': str(self.SLOW_MS),
                         'SPOOLGATE_SLOW_FSYNC_MS': str(self.SLOW_MS)})
        before = gw.record_ids()
        cps = []
        for i in range(self.WRITERS):
            src = os.path.join(gw.dir, 'slow-%d.eml' % i)
            with open(src, 'wb') as f:
                f.write(message(subject='slow %d' % i))
            cps.append(subprocess.Popen(['cp', src, os.path.join(gw.mnt, 'outbox', 'slow-%d.eml' % i)],
                                        stderr=subprocess.PIPE))
        self.addCleanup(lambda: [p.kill() for p in cps if p.poll() is None])
        # each submission's files, unnamed in tmp/, wait for their slow syncs
        tmp = os.path.realpath(gw.path('tmp')) + '/'
        harness.wait_until(lambda: len([t for t in daemon_fd_targets(gw.procs['fs'].pid, 1)
                                        if t.startswith(tmp)]) >= self.WRITERS,
                           20, 'every submission to reach its syncs')
        # opendir always asks the daemon: these are served while the closes sync
        self.assertEqual(len(os.listdir(os.path.join(gw.mnt, 'inbox', 'bob'))), 1)
        self.assertEqual(len(set(os.listdir(os.path.join(gw.mnt, 'outbox'))) - {'wait'}),
                         self.WRITERS)
        self.assertTrue(all(p.poll() is None for p in cps),
                        'a close returned before the listings were served: nothing overlapped')
        for p in cps:
            self.assertEqual(p.wait(timeout=120), 0, p.stderr.read())
        self.assertEqual(len(gw.record_ids() - before), self.WRITERS)
        gw.stop('fs')
        commits, batches, max_batch = harness.batch_stats(self, gw.read_log('fs'), 'outbox-commits',
                                                          'commits')
        log('  %d closes committed in %d batches, largest %d' % (commits, batches, max_batch))
        self.assertEqual(commits, self.WRITERS)
        self.assertLess(batches, commits, 'concurrent closes did not share a directory sync')


class SyncOrder(unittest.TestCase):
    """spoolgate-fs with two LD_PRELOAD shims: sync_order.c logs every name
    the spool publishes and whether its content was synced before it, and
    slow_sync.c makes every sync slow enough that concurrent closes meet in
    batches.  No message's data or record is named in data/ or queue/
    before a sync covered it, except a sealed inline record (a small drop),
    whose readers tell it torn: its name and content share the batch's one
    syncfs, which follows.  A message of two files still has its content
    synced first."""

    WRITERS = 8
    FILES = 40
    SLOW_MS = 30

    def test_no_name_before_its_content(self):
        """40 cp by 8 writers at once into outbox/: every name published after its content's sync"""
        order = os.environ.get('SPOOLGATE_SYNC_ORDER_SHIM', '')
        slow = os.environ.get('SPOOLGATE_SLOW_SYNC_SHIM', '')
        if not (os.path.exists(order) and os.path.exists(slow)):
            self.skipTest('SPOOLGATE_SYNC_ORDER_SHIM or SPOOLGATE_SLOW_SYNC_SHIM not built '
                          '(run through meson test)')
        gw = harness.Instance('fs-order')
        self.addCleanup(gw.cleanup)
        order_log = os.path.join(gw.dir, 'sync-order.log')
        gw.start_fs(env={'LD_PRELOAD': order + ':' + slow, 'SPOOLGATE_SYNC_ORDER_LOG': order_log,
                         'SPOOLGATE_SLOW_FDATASYNC_MS': str(self.SLOW_MS),
                         'SPOOLGATE_SLOW_FSYNC_MS': str(self.SLOW_MS)})
        srcs = []
        for i in range(self.FILES):
            srcs.append(os.path.join(gw.dir, 'order-%d.eml' % i))
            with open(srcs[-1], 'wb') as f:
                f.write(message(subject='order %d' % i))
        running = []
        for i, src in enumerate(srcs):
            if len(running) == self.WRITERS:
                p = running.pop(0)
                self.assertEqual(p.wait(timeout=60), 0, p.stderr.read())
            running.append(subprocess.Popen(['cp', src, os.path.join(gw.mnt, 'outbox', 'o%d.eml' % i)],
                                            stderr=subprocess.PIPE))
        for p in running:
            self.assertEqual(p.wait(timeout=60), 0, p.stderr.read())
        # and one message of two files (past the 64 KiB write buffer)
        cp_to_outbox(self, gw, message(subject='two files', body=('x' * 79 + '\n') * 1000), 'big.eml')
        gw.stop('fs')
        with open(order_log) as f:
            lines = f.read().splitlines()
        self.assertEqual([l for l in lines if l.startswith('published-unsynced ')], [],
                         'names published before their content was synced')
        self.assertNotIn('overflow', lines)
        # each small drop is one file, a sealed inline record: one name, in queue/,
        # published before the syncfs that makes it and its content durable (or
        # after one that covered it already: a drop waiting while the batch before
        # it synced); the message of two files has two names, published synced
        def published(kind, d):
            return [i for i, l in enumerate(lines) if l.startswith(kind + ' ') and
                    os.path.basename(os.path.dirname(l.split(' ', 1)[1])) == d]
        self.assertEqual(published('published-sealed', 'data'), [])
        self.assertEqual(len(published('published', 'data')), 1)
        sealed = published('published-sealed', 'queue')
        self.assertEqual(len(sealed) + len(published('published', 'queue')), self.FILES + 1)
        self.assertGreater(len(sealed), 0, 'no sealed record was published before its sync')
        self.assertIn('syncfs', lines[sealed[-1]:], 'no syncfs after the last sealed record')
        log('  %d of %d drops published before their one sync' % (len(sealed), self.FILES))
        commits, batches, max_batch = harness.batch_stats(self, gw.read_log('fs'), 'outbox-commits',
                                                          'commits')
        syncfs = lines.count('syncfs')
        log('  %d closes in %d batches (largest %d), %d syncfs' % (commits, batches, max_batch, syncfs))
        self.assertEqual(commits, self.FILES + 1)
        if syncfs:	# one per batch; the two-file message's batch one more
            self.assertLessEqual(syncfs, batches + 1, 'a batch of sealed records synced their content first')


def daemon_fd_targets(pid, min_size=0):
    """What the descriptors of process pid point to (readlink of
    /proc/<pid>/fd/*), those of files of min_size bytes or more."""
    out = []
    fddir = '/proc/%d/fd' % pid
    for n in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, n))
            if min_size == 0 or os.stat(os.path.join(fddir, n)).st_size >= min_size:
                out.append(target)
        except OSError:
            pass		# closed meanwhile
    return out


def bash_message_script(name, size):
    """bash that writes a message of size bytes into outbox/name (under cwd)."""
    return ('{ printf "From: root@localhost\\nTo: bob@example.net\\nSubject: %s\\n\\n"; '
            'yes "a line of a message that may not fit" | head -c %d; } > outbox/%s'
            % (name, size, name))


class DraftsInMemory(unittest.TestCase):
    """Where a draft of outbox/ lives while it is written: memory, then
    spool/tmp/ past 1 MiB or near a full disk."""

    def test_draft_leaves_memory_past_its_limit(self):
        """a draft is a memfd of the daemon up to 1 MiB, then a temporary in tmp/; queued whole"""
        gw = harness.Instance('fs-drafts', max_message_size=8 << 20)
        self.addCleanup(gw.cleanup)
        gw.start_fs()
        pid = gw.procs['fs'].pid
        tmp = os.path.realpath(gw.path('tmp')) + '/'
        memfds = lambda: [t for t in daemon_fd_targets(pid) if t.startswith('/memfd:spoolgate-draft')]
        # a file of tmp/ that holds bytes: not the room probe's (outfile.h), always empty
        in_tmp = lambda: [t for t in daemon_fd_targets(pid, 1) if t.startswith(tmp)]
        self.assertEqual(memfds(), [])
        head = message(subject='grows', bcc=None, body='')
        body = b''.join(b'line %07d of a draft that grows past one mebibyte\n' % i
                        for i in range(40000))
        self.assertGreater(len(head) + len(body), 2 << 20)
        before = gw.record_ids()
        fd = os.open(os.path.join(gw.mnt, 'outbox', 'grows.eml'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, head + body[:100000])
            self.assertEqual(len(memfds()), 1, 'a small draft is not in memory')
            self.assertEqual(in_tmp(), [], 'a small draft has a temporary in tmp/')
            pos = 100000
            while pos < len(body):
                pos += os.write(fd, body[pos:pos + 65536])
            self.assertEqual(memfds(), [], 'a draft past 1 MiB is still in memory')
            self.assertEqual(len(in_tmp()), 1, 'a draft past 1 MiB has no temporary in tmp/')
            self.assertTrue(in_tmp()[0].endswith(' (deleted)'), in_tmp())
            self.assertEqual(os.fstat(fd).st_size, len(head) + len(body))
        finally:
            os.close(fd)
        new = gw.record_ids() - before
        self.assertEqual(len(new), 1)
        msgid = new.pop()
        with open(os.path.join(gw.mnt, 'queue', msgid), 'rb') as f:
            self.assertEqual(as_written(f.read()), head + body)
        self.assertIn('event=outbox-draft-to-disk name=grows.eml why=size', gw.read_log('fs'))
        # The submitted name lingers with its bytes; rm lets the temporary go.
        self.assertEqual(os.stat(os.path.join(gw.mnt, 'outbox', 'grows.eml')).st_size,
                         len(head) + len(body))
        os.unlink(os.path.join(gw.mnt, 'outbox', 'grows.eml'))
        self.assertEqual(in_tmp(), [], 'the temporary outlived its name')

    def bash_write_fails(self, spool_setup, name, size, strerror, **fs_args):
        """An instance whose spool spool_setup(gw) places (it returns None
        or why it cannot; None: the spool as it is), its fs daemon started
        with fs_args; bash writes a message of size bytes into outbox/name
        and must report strerror.  Returns the instance."""
        gw = harness.Instance('fs-' + name.split('.')[0])
        self.addCleanup(gw.cleanup)
        why = spool_setup(gw) if spool_setup else None
        if why:
            self.skipTest(why)
        gw.start_fs(**fs_args)
        # Under 1 MiB, so that only the room probe and statvfs keep it out
        # of memory: in memory, every write would succeed and only the
        # close fail, which bash ignores on a redirection.
        r = sh(bash_message_script(name, size), cwd=gw.mnt)
        self.assertNotEqual(r.returncode, 0, 'the shell saw no error: %r' % (r,))
        self.assertIn(strerror, r.stderr)
        return gw

    def assert_small_message_goes(self, gw, size):
        """After a refusal the mount still queues a message of size bytes."""
        before = gw.record_ids()
        r = sh(bash_message_script('small.eml', size), cwd=gw.mnt)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(len(gw.record_ids() - before), 1)

    def test_quota_fails_the_write(self):
        """spool on a btrfs subvolume limited to 600 KB: an 800 KB message fails at write (EDQUOT)"""
        # statvfs shows some 180 MB free there: by the disk's room alone
        # the draft would stay in memory.
        gw = self.bash_write_fails(lambda gw: gw.mount_quota_spool('600K'), 'quota.eml', 800000,
                                   'Disk quota exceeded')
        self.assertIn('why=quota', gw.read_log('fs'))
        self.assert_small_message_goes(gw, 100000)	# under the quota: the same write, 100 KB

    def test_file_size_limit(self):
        """spoolgate-fs under ulimit -f of 512 KiB: 800 KB fails at write (EFBIG), the daemon lives"""
        # The room probe asks for 16 MiB and more: past the limit, which
        # must be EFBIG from fallocate(2), not a SIGXFSZ that kills the daemon.
        gw = self.bash_write_fails(None, 'big.eml', 800000, 'File too large', fsize=512 << 10)
        self.assertIsNone(gw.procs['fs'].poll(), 'spoolgate-fs died: %s' % gw.read_log('fs')[-2000:])
        self.assertIn('why=file-size', gw.read_log('fs'))
        self.assertIn('event=outbox-rejected name=big.eml errno=EFBIG', gw.read_log('fs'))
        self.assert_small_message_goes(gw, 10000)

    def test_full_disk_fails_the_write(self):
        """spool on a 512 KB tmpfs: an 800 KB message fails at write (ENOSPC), bash says so"""
        gw = self.bash_write_fails(lambda gw: gw.mount_tmpfs_spool('512k'), 'full.eml', 800000,
                                   'No space left on device')
        self.assertEqual(gw.record_ids(), set())
        self.assertIn('event=outbox-rejected name=full.eml errno=ENOSPC', gw.read_log('fs'))
        # The space is free again (nothing was kept): a small message goes.
        r = sh('printf "From: root@localhost\\nTo: bob@example.net\\nSubject: fits\\n\\nok\\n"'
               ' > outbox/fits.eml', cwd=gw.mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(gw.record_ids()), 1)


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
        cp_to_outbox(self, gw, message(subject='before kill'), 'k.eml')

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
        cp_to_outbox(self, gw, message(subject='before kill'), 'k2.eml')
        self.assertEqual(len([n for n in os.listdir(os.path.join(gw.mnt, 'queue'))
                              if not n.endswith('.status')]), 2)
        # SIGTERM unmounts and exits 0.
        self.assertEqual(gw.kill('fs', signal.SIGTERM), 0, 'fs exit status after SIGTERM')
        self.assertFalse(harness.is_mounted(gw.mnt), 'still mounted after SIGTERM')


class ParkedClaim(unittest.TestCase):
    """While the relay finishes an attempt, the record is parked in tmp/
    (active/<claim> -> tmp/<claim>.old, then tmp/<claim>.new -> queue/,
    sent/ or failed/).  queue/ still shows it then, and stops once the
    new record is published.  The state is made by hand, without a relay,
    so the window is as wide as the test needs."""

    def one_drop(self, name):
        """A mount without a relay and one drop in it, an inline record:
        (the instance, its id, its record's text)."""
        gw = harness.Instance('fs-' + name)
        self.addCleanup(gw.cleanup)
        gw.start_fs()
        cp_to_outbox(self, gw, message(subject=name), name + '.eml')
        (msgid,) = gw.record_ids()
        return gw, msgid, gw.find_record(msgid)[1]

    def test_parked_record_stays_in_queue_until_published(self):
        """a record parked in tmp/ is listed and read in queue/; a publish in sent/ hides it"""
        gw, msgid, record = self.one_drop('parked')
        with open(os.path.join(gw.mnt, 'queue', msgid), 'rb') as f:
            data = f.read()
        # No relay here: the drop is still one file, an inline record.  The
        # mount shows its message, and its .status the record's text alone.
        self.assertIn('\ndata: inline\n', record)
        self.assertFalse(os.path.exists(gw.path('data', msgid)))
        self.assertEqual(data, gw.message_of(msgid))
        self.assertEqual(os.stat(os.path.join(gw.mnt, 'queue', msgid + '.status')).st_size, len(record))
        # Parked by another host's runner: no recovery here gives it back.
        # The mount is restarted so that the kernel has nothing cached.
        self.assertEqual(gw.kill('fs', signal.SIGTERM), 0)
        parked = gw.path('tmp', '%s@elsewhere.invalid,4242.old' % msgid)
        os.rename(gw.path('queue', msgid), parked)
        gw.start_fs()
        queue = os.path.join(gw.mnt, 'queue')
        self.assertEqual(sorted(os.listdir(queue)), sorted([msgid, msgid + '.status']))
        with open(os.path.join(queue, msgid + '.status')) as f:
            self.assertEqual(f.read(), record)
        with open(os.path.join(queue, msgid), 'rb') as f:
            self.assertEqual(f.read(), data)
        # The new record published in sent/ (the parked one is removed only
        # after that): queue/ stops showing it, though the kernel had it cached.
        os.stat(os.path.join(queue, msgid))
        newrec = gw.path('tmp', '%s@elsewhere.invalid,4242.new' % msgid)
        with open(newrec, 'w') as f:
            f.write(record.replace('data: inline\n', ''))	# as the runner's rewrite
        os.rename(newrec, gw.path('sent', msgid))
        harness.wait_until(lambda: not os.path.exists(os.path.join(queue, msgid)), 10,
                           'queue/%s to go once its record is in sent/' % msgid)
        self.assertFalse(os.path.exists(os.path.join(queue, msgid + '.status')))
        self.assertEqual(os.listdir(queue), [])
        self.assertEqual(sorted(os.listdir(os.path.join(gw.mnt, 'sent'))),
                         sorted([msgid, msgid + '.status']))


    def test_corrupt_record_status_shows_it(self):
        """a record that does not parse: its .status shows it whole, its message is EIO"""
        gw = harness.Instance('fs-corrupt')
        self.addCleanup(gw.cleanup)
        gw.start_fs()
        msgid = '1796000000.M1P1Q1'
        with open(gw.path('queue', msgid), 'w') as f:
            f.write('spoolgate-envelope: 1\nnot a record\n\nand no message either\n')
        with open(os.path.join(gw.mnt, 'queue', msgid + '.status')) as f:
            self.assertEqual(f.read(), 'spoolgate-envelope: 1\nnot a record\n\nand no message either\n')
        with self.assertRaises(OSError) as cm:
            open(os.path.join(gw.mnt, 'queue', msgid), 'rb').read()
        self.assertEqual(cm.exception.errno, errno.EIO)

    def test_torn_inline_record_is_eio(self):
        """an inline record whose seal does not match (a power cut's torn file): its message is EIO"""
        gw, msgid, record = self.one_drop('torn')
        self.assertRegex(record, r'\ninline-crc32: [0-9a-f]{8}\n$')
        with open(os.path.join(gw.mnt, 'queue', msgid), 'rb') as f:
            self.assertEqual(f.read(), gw.message_of(msgid))
        # One byte of the message changed on the disk, as a block a power cut did not write.
        with open(gw.path('queue', msgid), 'r+b') as f:
            raw = f.read()
            f.seek(len(raw) - 3)
            f.write(bytes([raw[-3] ^ 0x20]))
        with self.assertRaises(OSError) as cm:
            open(os.path.join(gw.mnt, 'queue', msgid), 'rb').read()
        self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertIn('event=record-unreadable id=%s reason=torn' % msgid, gw.read_log('fs'))
        # its .status shows the file whole, as for any record that does not read
        with open(os.path.join(gw.mnt, 'queue', msgid + '.status'), 'rb') as f:
            self.assertEqual(len(f.read()), len(raw))


class Unmount(unittest.TestCase):
    """An unmount while listings and files are still open frees them (an
    AddressSanitizer build, ./test --sanitize, turns a leak into exit 1)."""

    def test_unmount_with_open_handles(self):
        """SIGTERM with open directories and files: exit 0, no leak reported"""
        gw = harness.Instance('fs-unmount')
        self.addCleanup(gw.cleanup)
        gw.start_smtpd()
        gw.start_fs()
        with smtplib.SMTP('127.0.0.1', gw.port, timeout=15) as s:
            s.sendmail('alice@example.org', ['bob@localhost'], 'Subject: u\r\n\r\nbody\r\n')
        held = []
        for d in ('', 'inbox', 'inbox/bob', 'outbox', 'queue'):
            it = os.scandir(os.path.join(gw.mnt, d))	# an open listing
            next(it, None)
            held.append(it)
        name = os.listdir(os.path.join(gw.mnt, 'inbox', 'bob'))[0]
        files = [os.open(os.path.join(gw.mnt, 'inbox', 'bob', name), os.O_RDONLY),
                 os.open(os.path.join(gw.mnt, 'outbox', 'draft.eml'), os.O_WRONLY | os.O_CREAT,
                         0o644)]
        try:
            status = gw.kill('fs', signal.SIGTERM)
        finally:
            for it in held:
                it.close()
            for fd in files:
                try:
                    os.close(fd)
                except OSError:
                    pass
        text = gw.read_log('fs')
        self.assertNotIn('LeakSanitizer', text)
        self.assertEqual(status, 0, 'fs exit status with open handles at unmount')
        self.assertIn('event=outbox-discarded name=draft.eml reason=shutdown', text)


if __name__ == '__main__':
    harness.main(binaries=(harness.SMTPD, harness.FS))
