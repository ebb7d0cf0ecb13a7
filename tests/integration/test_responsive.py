#!/usr/bin/python3
"""test_responsive - a slow disk stalls no session but the one that waits for it.

spoolgate-smtpd runs with an LD_PRELOAD shim (tests/shim/slow_sync.c) that
makes every fdatasync(2) take 2 seconds, as on a disk with slow flushes.

* While one session's message is being committed, another session is served:
  its EHLO, NOOP and VRFY get their replies before the first session gets
  its 250 (the event loop never syncs; the committer thread does).
* Messages whose DATA ends while a commit is under way wait together and are
  committed as one batch: the committer's statistics show a batch of more
  than one (group commit).
* Every message still gets its 250 and is in the mailbox.

The checks are on the order of events, not on durations: the shim's 2 s
sleep only makes the window wide.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import RawSMTP, assert_reply, log, queued_id

SLOW_MS = 2000
FOLLOWERS = 4


def start_transaction(tc, gw, subject):
    """A session that has sent a whole message and not read the final reply."""
    c = RawSMTP(gw.smtp_addr)
    tc.addCleanup(c.close)
    c.ehlo()
    c.send(b'MAIL FROM:<a@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n')
    for code in (250, 250, 354):
        assert_reply(tc, c.reply(), code)
    c.send(b'Subject: ' + subject.encode() + b'\r\n\r\nbody\r\n.\r\n')
    return c


class Responsive(unittest.TestCase):

    def setUp(self):
        self.shim = os.environ.get('SPOOLGATE_SLOW_SYNC_SHIM', '')
        if not os.path.exists(self.shim):
            self.skipTest('SPOOLGATE_SLOW_SYNC_SHIM not built (run through meson test)')
        self.gw = harness.Instance('responsive')
        self.addCleanup(self.gw.cleanup)
        self.gw.start_smtpd(env={'LD_PRELOAD': self.shim,
                                 'SPOOLGATE_SLOW_FDATASYNC_MS': str(SLOW_MS)})

    def commits_in_flight(self):
        return len(re.findall(r'event=state .* old=data new=commit', self.gw.read_log('smtpd')))

    def test_other_sessions_served_during_a_slow_commit(self):
        """a 2 s fdatasync: another session is served meanwhile; waiting commits share a batch"""
        gw = self.gw
        first = start_transaction(self, gw, 'first')
        harness.wait_until(lambda: self.commits_in_flight() >= 1, 10, 'the first commit to start')

        other = RawSMTP(gw.smtp_addr)
        self.addCleanup(other.close)
        other.ehlo()
        assert_reply(self, other.cmd('NOOP'), 250)
        assert_reply(self, other.cmd('VRFY bob'), 252)
        self.assertTrue(first.nothing_more(0.01),
                        'the first 250 came before the other session was served: '
                        'the test did not overlap a commit')
        log('  another session served while the first commit syncs')

        followers = [start_transaction(self, gw, 'follower %d' % i) for i in range(FOLLOWERS)]
        harness.wait_until(lambda: self.commits_in_flight() >= 1 + FOLLOWERS, 10,
                           'the followers to reach their commit')

        ids = []
        for c in [first] + followers:
            r = c.reply(timeout=60)
            assert_reply(self, r, 250)
            ids.append(queued_id(r.text))
        for msgid in ids:
            self.assertIsNotNone(gw.find_mail('bob', msgid), 'message %s not in mail/bob/new' % msgid)

        gw.stop('smtpd')
        stats = re.search(r'event=commitq-stats jobs=(\d+) batches=(\d+) max_batch=(\d+)',
                          gw.read_log('smtpd'))
        self.assertIsNotNone(stats, 'no commitq-stats line at shutdown')
        jobs, batches, max_batch = (int(x) for x in stats.groups())
        log('  commitq: %d jobs in %d batches, largest %d' % (jobs, batches, max_batch))
        self.assertEqual(jobs, 1 + FOLLOWERS)
        self.assertGreaterEqual(max_batch, 2, 'commits that waited together were not grouped')
        self.assertLess(batches, jobs)


if __name__ == '__main__':
    harness.main()
