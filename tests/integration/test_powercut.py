#!/usr/bin/python3
"""test_powercut - power cuts while 8 writers drop files into outbox/.

The spool is a new ext4, with a journal (mkfs.ext4's defaults) and without
one, on a disk that records every write and every cache flush
(tests/crash/logdisk under a loop device: harness.mount_logged_spool).
8 writers drop MESSAGES files
into outbox/ with "dd conv=fsync" (one process per file, as cp); each
close() that returns 0 is noted with the disk log's length at that moment.
A control writer puts files into a plain directory of the same filesystem
without any sync, and notes them the same way.  The ...WithRelay classes
run spoolgate-smtpd too, whose relay defers every drop (its smarthost
refuses) and tries again each second: records are rewritten, inline
records converted (their file linked as data/<id>) and claims parked in
tmp/ while the drops go on.

Then the disk states a power cut could have left are rebuilt from the
first image and the log: at a cut, every write before the last flush,
and of the writes after it (a volatile disk cache) none, all, or a random
half.  Cuts are taken at random points of the log, at the ends of sync
epochs (just before a flush, with a random half of the epoch's writes),
and right after control files were "acknowledged".  Each state
gets what a boot would give it, e2fsck -fy (without a journal a cut
leaves repairs to make; with one, it replays the journal), then is
mounted and given spoolgate-smtpd's start-up recovery (tests/crash/recover,
spool_recover() alone), and is checked, as "250 means durable" reads:

  - every outbox/ file whose close() returned before the cut is queued:
    in the record recovery keeps (queue/<id>, else a claim in active/ or
    parked in tmp/), with its whole message (its Subject token and its END
    line) in data/ or, inline, in the record's own file;
  - no record in queue/ names data that is missing or cut short.  Before
    recovery there may be such records, of commits never acknowledged: a
    record whose data file is missing (a commit cut between its two
    names), and an inline record published before its file was durable,
    which its seal shows torn (common/envelope.h).  Recovery drops both;
    the records it drops as torn are counted.

The control shows that the check sees a loss: some state must have lost
a control file "acknowledged" before its cut.
"""

import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log

RECOVER = os.environ.get('SPOOLGATE_RECOVER') or os.path.join(harness.BUILD, 'tests', 'recover')
KEEP = os.environ.get('SPOOLGATE_POWERCUT_KEEP')	# a directory: failing states are copied there
MESSAGES = 160
WRITERS = 8
CONTROLS = 6			# control files, one after every MESSAGES / CONTROLS drops
RANDOM_CUTS = 14		# random points of the log, three states each
EPOCH_CUTS = 80			# ends of epochs (just before a flush), two states each
RUN = uuid.uuid4().hex[:8]
TOKEN_RE = re.compile(rb'Subject: (pc-[0-9a-f]{8}-\d{3})\n')
# What e2fsck says of a directory whose blocks a cut lost or mixed up (as
# opposed to a name lost in half a rename, which spoolgate must survive).
DIRECTORY_DAMAGED = re.compile(r'^(Directory inode \d+, block|Problem in HTREE directory|'
                               r'Invalid HTREE directory|HTREE directory inode \d+ has|'
                               r"Entry '[^']*' in \S+ \(\d+\) has deleted/unused inode)", re.M)


def message(i):
    tok = 'pc-%s-%03d' % (RUN, i)
    body = ''.join('%s line %02d %s\n' % (tok, n, 'y' * 60) for n in range(40))
    return tok, ('From: <backup@example.org>\nTo: <ops@example.net>\nSubject: %s\n\n%sEND %s\n'
                 % (tok, body, tok)).encode()


# ------------------------------------------------------------ the disk log

class DiskLog:
    """The records of tests/crash/logdisk's log: ('W', offset, data) and
    ('F',), each with the log position where it ends."""

    def __init__(self, path):
        with open(path, 'rb') as f:
            raw = f.read()
        self.records, self.ends = [], []
        pos = 0
        while pos < len(raw):
            if raw[pos:pos + 1] == b'F':
                self.records.append(('F',))
                pos += 1
            elif raw[pos:pos + 1] == b'W' and pos + 13 <= len(raw):
                off, n = struct.unpack_from('<QI', raw, pos + 1)
                if pos + 13 + n > len(raw):
                    break			# a record cut by our reading: not used
                self.records.append(('W', off, raw[pos + 13:pos + 13 + n]))
                pos += 13 + n
            else:
                raise AssertionError('disk log: bad record at %d' % pos)
            self.ends.append(pos)
        self.flush_upto, last = [], -1	# per record: the last 'F' at or before it
        for i, rec in enumerate(self.records):
            last = i if rec[0] == 'F' else last
            self.flush_upto.append(last)

    def last_flush(self, k):
        """Index of the last 'F' at or before record k, or -1."""
        return self.flush_upto[k]

    def record_at(self, pos):
        """Index of the last record that ends at or before log position pos."""
        k = -1
        for i, end in enumerate(self.ends):
            if end > pos:
                break
            k = i
        return k


def apply_writes(image, records):
    with open(image, 'r+b') as f:
        for rec in records:
            if rec[0] == 'W':
                f.seek(rec[1])
                f.write(rec[2])


# ------------------------------------------------------------ the checks

def listdir(root, d):
    path = os.path.join(root, d)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def queued_records(root):
    """{id: the record recovery keeps for it}: queue/<id>; else a claim
    of active/, or one parked in tmp/ (<claim>.old) while the relay
    published its new record, which recovery gives back to queue/
    (common/spool.c); else the new record a relay was publishing
    (<claim>.new) when the claim's name was lost (restore_new_record()).
    A published record wins over a claim: recovery removes the claim then."""
    records = {}
    for d in ('tmp', 'active'):
        for name in listdir(root, d):
            if '@' in name and (d == 'active' or name.endswith('.old')):
                records[name.split('@', 1)[0]] = os.path.join(d, name)
    for name in listdir(root, 'queue'):
        if not name.startswith('.'):
            records[name] = os.path.join('queue', name)
    for name in listdir(root, 'tmp'):
        if '@' in name and name.endswith('.new'):
            records.setdefault(name.split('@', 1)[0], os.path.join('tmp', name))
    return records


def recover(root):
    """Recovery as spoolgate-smtpd runs it at start, on the mounted state
    (this host's name: the test's daemons ran here): the number of
    records it dropped as torn (an inline record whose seal does not
    match, or whose file is cut short or zeros; a new record whose sealed
    data file is)."""
    r = subprocess.run([RECOVER, root, socket.gethostname()], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise AssertionError('recovery failed on the state: %s' % r.stderr.strip()[-500:])
    if KEEP:
        with open(os.path.join(KEEP, 'last-recovery.log'), 'w') as f:
            f.write(r.stderr)
    return sum(1 for line in r.stderr.splitlines()
               if 'event=recovery-record-dropped' in line and 'torn' in line)


def scan_spool(root):
    """(tokens of whole queued messages, problems) of a mounted state,
    after recovery."""
    queued, problems = set(), []
    for name, rel in sorted(queued_records(root).items()):
        try:
            data = harness.stored_message(os.path.join(root, rel), os.path.join(root, 'data', name))
        except FileNotFoundError:
            if rel.startswith('queue/'):
                problems.append('%s: its data file is missing after recovery' % rel)
            continue
        m = TOKEN_RE.search(data)
        if m is None or (b'\nEND ' + m.group(1) + b'\n') not in data:
            problems.append('%s: its data is cut short (%d bytes)' % (rel, len(data)))
            continue
        queued.add(m.group(1).decode())
    return queued, problems


def files_naming(dirpath, tok):
    """Files of dirpath whose first 64 KiB name tok."""
    found = []
    for name in listdir(dirpath, '.'):
        path = os.path.join(dirpath, name)
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                if tok.encode() in f.read(65536):
                    found.append(name)
    return found


def record_only_in_lost_found(root, tok):
    """Whether the message of tok left no trace in the spool but its
    record in lost+found: the record's only name was lost, and e2fsck
    attached the file there.  Without a journal, ext4 orders no two
    blocks: half of a rename (a claim, queue/<id> -> active/<claim>) whose
    source directory's block reached the disk and the target's did not,
    or a directory that grew and moved entries to a new block that did not
    reach it.  No sync around every claim is made for it.  A new record
    of the message in tmp/ is a trace (recovery restores it): not excused.
    Every record names the dropped file in its origin line."""
    lost_found = os.path.join(root, 'lost+found')
    records = []
    for name in files_naming(lost_found, tok):
        with open(os.path.join(lost_found, name), 'rb') as f:
            if f.read(20).startswith(b'spoolgate-envelope:'):
                records.append(name)
    return bool(records) and not files_naming(os.path.join(root, 'tmp'), tok)


def scan_controls(root):
    cdir = os.path.join(root, 'control')
    found = set()
    for name in os.listdir(cdir) if os.path.isdir(cdir) else []:
        with open(os.path.join(cdir, name), 'rb') as f:
            if f.read().endswith(b'END\n'):
                found.add(name)
    return found


class PowerCut:
    """The test, on the filesystem of JOURNAL (a mixin: the classes below)."""

    JOURNAL = True
    RELAY = False	# spoolgate-smtpd runs too: its relay defers each drop, rewriting its record

    def setUp(self):
        # the relay's smarthost refuses: each message deferred, retried every second
        self.gw = harness.Instance('powercut', retry_min=1, retry_max=1) if self.RELAY else \
            harness.Instance('powercut')
        self.addCleanup(self.gw.cleanup)
        reason = self.gw.mount_logged_spool(journal=self.JOURNAL)
        if reason:
            self.skipTest(reason)

    def drop_all(self):
        """MESSAGES drops by WRITERS, and the controls; returns the acks:
        {token: log position}, {control name: log position}."""
        gw = self.gw
        outbox = os.path.join(gw.mnt, 'outbox')
        control = os.path.join(gw.spool, 'control')
        os.mkdir(control)
        src = tempfile.mkdtemp(prefix='pc-src.', dir=gw.dir)
        lock = threading.Lock()
        acks, controls, errors = {}, {}, []
        todo = list(range(MESSAGES))

        def log_pos():
            return os.path.getsize(gw.disk_log)

        def writer():
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                tok, data = message(i)
                path = os.path.join(src, tok)
                with open(path, 'wb') as f:
                    f.write(data)
                r = subprocess.run(['dd', 'if=' + path, 'of=' + os.path.join(outbox, tok + '.eml'),
                                    'bs=64k', 'conv=fsync', 'status=none'],
                                   capture_output=True, text=True, timeout=60)
                pos = log_pos()
                with lock:
                    if r.returncode != 0:
                        errors.append('%s: %s' % (tok, r.stderr.strip()))
                        continue
                    acks[tok] = pos
                    if len(acks) % (MESSAGES // CONTROLS) == 0 and len(controls) < CONTROLS:
                        name = 'c%d' % len(controls)
                        with open(os.path.join(control, name), 'wb') as f:
                            f.write(b'control ' * 100 + b'END\n')	# no sync
                        controls[name] = log_pos()

        threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [], 'drops refused')
        self.assertEqual(len(acks), MESSAGES)
        return acks, controls

    def cuts(self, disk, controls):
        """[(record index, variant)], variant none, all or half (a random
        half of the writes since the last flush, drawn anew each time).
        Random points; the end of an epoch (just before a flush, where
        the writes one sync ordered are all in flight) with two draws each;
        the points where control files were acknowledged; the end."""
        rng = random.Random(RUN)
        n = len(disk.records)
        flushes = [i for i, r in enumerate(disk.records) if r[0] == 'F' and i > 0]
        picks = [(rng.randrange(n), v) for _ in range(RANDOM_CUTS) for v in ('none', 'all', 'half')]
        for i in rng.sample(flushes, min(EPOCH_CUTS, len(flushes))):
            picks += [(i - 1, 'half'), (i - 1, 'half')]
        picks += [(disk.record_at(pos), 'none') for pos in controls.values()]
        picks.append((n - 1, 'all'))
        return sorted(picks)

    def state_image(self, disk, base, k, variant, rng):
        """A copy of base (the image up to the last flush before k) with
        the volatile writes of variant applied."""
        f = disk.last_flush(k)
        volatile = [r for r in disk.records[f + 1:k + 1] if r[0] == 'W']
        if variant == 'none':
            volatile = []
        elif variant == 'half':
            volatile = [r for r in volatile if rng.random() < 0.5]
        state = os.path.join(self.gw.disk_dir, 'state')
        subprocess.run(['cp', '--sparse=always', base, state], check=True)
        apply_writes(state, volatile)
        return state

    def check_state(self, state, acked, controls_acked):
        """What a machine does at boot after the cut, e2fsck -fy (without a
        journal a cut leaves the filesystem to repair; with one, e2fsck
        replays it), then the checks on the mounted state."""
        mnt = os.path.join(self.gw.disk_dir, 'state-mnt')
        os.makedirs(mnt, exist_ok=True)
        r = subprocess.run(['e2fsck', '-fy', state], capture_output=True, text=True, timeout=120)
        self.fsck_out = r.stdout
        if r.returncode >= 4:	# 0: clean, 1: repaired
            return [], ['e2fsck could not repair it (exit %d): %s'
                        % (r.returncode, r.stdout.strip()[-300:])], set()
        if 'Unattached inode' in r.stdout and DIRECTORY_DAMAGED.search(r.stdout):
            return None		# the filesystem lost a directory: see filesystem_lost_a_directory
        if KEEP:	# the state as recovery found it, kept if it fails
            subprocess.run(['cp', '--sparse=always', state, state + '.before-recovery'], check=True)
        r = subprocess.run(['mount', '-o', 'loop', state, mnt], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, 'the state does not mount: %s' % r.stderr.strip())
        try:
            self.torn_dropped += recover(mnt)
            queued, problems = scan_spool(mnt)
            lost_controls = set(controls_acked) - scan_controls(mnt)
            lost = sorted(set(acked) - queued)
            if 'Unattached inode' in self.fsck_out:
                orphaned = set(t for t in lost if record_only_in_lost_found(mnt, t))
                self.renames_lost += len(orphaned)
                lost = [t for t in lost if t not in orphaned]
        except OSError as e:
            queued, problems, lost_controls, lost = set(), ['reading the state: %s' % e], set(), []
        finally:
            harness.unmount(mnt)
        return lost, problems, lost_controls

    def test_power_cuts_lose_no_acknowledged_drop(self):
        gw = self.gw
        gw.start_fs()
        if self.RELAY:
            gw.start_smtpd()
        acks, controls = self.drop_all()
        if self.RELAY:
            deferred = gw.read_log('smtpd').count('event=relay-deferred')
            log('  the relay deferred %d times while the drops ran' % deferred)
            self.assertGreater(deferred, MESSAGES // 2, 'the relay rewrote too few records')
            gw.stop('smtpd')
        gw.stop('fs')
        harness.unmount(gw.spool)		# the log is whole
        disk = DiskLog(gw.disk_log)
        nflush = sum(1 for r in disk.records if r[0] == 'F')
        log('  disk log: %d records, %d flushes, %d bytes' % (len(disk.records), nflush,
                                                             disk.ends[-1]))
        self.assertGreater(nflush, 10, 'too few flushes: the log did not see them')
        rng = random.Random(RUN + 'subsets')
        base = os.path.join(gw.disk_dir, 'base')
        subprocess.run(['cp', '--sparse=always', gw.disk_first, base], check=True)
        applied = -1			# records of the log in base: [0, applied]
        failures, control_losses, checked, dirs_lost = [], 0, 0, 0
        self.renames_lost = self.torn_dropped = 0
        for k, variant in self.cuts(disk, controls):
            f = disk.last_flush(k)
            if f > applied:
                apply_writes(base, disk.records[applied + 1:f + 1])
                applied = f
            cut = disk.ends[k]
            acked = [t for t, pos in acks.items() if pos <= cut]
            controls_acked = [c for c, pos in controls.items() if pos <= cut]
            state = self.state_image(disk, base, k, variant, rng)
            found = self.check_state(state, acked, controls_acked)
            if KEEP and found is not None and (found[0] or found[1]) and \
                    os.path.exists(state + '.before-recovery'):
                kept = os.path.join(KEEP, '%s-%d-%s' % (type(self).__name__, k, variant))
                os.rename(state + '.before-recovery', kept)
                os.rename(os.path.join(KEEP, 'last-recovery.log'), kept + '.recovery.log')
                log('  kept the state (before recovery) as %s' % kept)
            if os.path.exists(state + '.before-recovery'):
                os.unlink(state + '.before-recovery')
            os.unlink(state)
            if found is None:
                dirs_lost += 1
                self.assertFalse(self.JOURNAL, 'e2fsck found files whose directory was lost, '
                                 'on a journaled ext4: %s' % self.fsck_out[-500:])
                continue
            lost, problems, lost_controls = found
            checked += 1
            control_losses += len(lost_controls)
            if lost or problems:
                failures.append('cut at record %d of %d (%s of the volatile writes): %d '
                                'acknowledged drops, lost %s; %s'
                                % (k, len(disk.records), variant, len(acked), lost[:5], problems[:5]))
        log('  %d power-cut states checked; control files lost in them: %d; states where '
            'e2fsck cleared a directory (not checked): %d; drops whose only record e2fsck put in '
            'lost+found (not counted lost): %d; torn records recovery dropped: %d'
            % (checked, control_losses, dirs_lost, self.renames_lost, self.torn_dropped))
        if self.JOURNAL:
            self.assertEqual(self.renames_lost, 0, 'a record in lost+found on a journaled ext4')
        self.assertEqual(failures, [], 'acknowledged drops lost or cut short by a power cut')
        self.assertGreater(control_losses, 0,
                           'no state lost an unsynced control file: the check cannot see a loss')


class Journaled(PowerCut, unittest.TestCase):
    """ext4 as mkfs.ext4 makes it, with a journal: what most spools are on."""

    JOURNAL = True


class WithoutJournal(PowerCut, unittest.TestCase):
    """ext4 without a journal: nothing orders the writes of one sync, so a
    name published before its content was durable shows as data cut short.

    filesystem_lost_a_directory: without a journal, a cut while a spool
    directory grows can leave its extent tree block written and its inode
    not (or the other way round); e2fsck then clears the whole directory
    and its files end up in lost+found ("Unattached inode"), acknowledged
    ones too.  Only states where e2fsck also reports a damaged directory
    (DIRECTORY_DAMAGED) are so excused: an inode unattached because half
    of a rename was lost is checked like any other state (recovery must
    find the message elsewhere: restore_new_record()).  A drop whose
    only record e2fsck attached to lost+found, with no trace left in the
    spool (record_only_in_lost_found()), is counted apart, not lost: the
    same window, one name at a time.  That is the filesystem's own window, which no order of
    syncs closes (a plain directory has it as well): such states are
    counted and not checked.  With a journal it must never happen."""

    JOURNAL = False


class JournaledWithRelay(PowerCut, unittest.TestCase):
    """As Journaled, with spoolgate-smtpd's relay deferring every drop
    (nothing listens at its smarthost) and trying again each second: each
    message's record is rewritten several times (the first rewrite links
    an inline record's file as data/<id>), a claim is parked in tmp/
    while its new record is published.  Every acknowledged drop must be
    in the record recovery keeps, with its whole data."""

    JOURNAL = True
    RELAY = True


class WithoutJournalWithRelay(PowerCut, unittest.TestCase):
    """As WithoutJournal, with the relay of JournaledWithRelay."""

    JOURNAL = False
    RELAY = True


if __name__ == '__main__':
    harness.main(binaries=(harness.FS, harness.SMTPD))
