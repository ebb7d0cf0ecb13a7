"""test_shared_spool - two gateways (nodes) on one spool (issue 11).

Two spoolgate-smtpd, node-a and node-b, each with its own listener, share
one spool, relaying to one counting sink (a raw SMTP server of the
test's own that records every Message-ID it accepts, 50 ms per message,
two deliveries at a time per node, so
that deliveries are in flight when a node is hit):

* LocalSpool: both on one local directory (runs everywhere: the lease
  and takeover logic without a network filesystem).
* Gluster: a real GlusterFS 10 volume: glusterd bound to 127.0.0.2 with
  its own working and run directories, one brick under the test's
  directory created with `force`, `performance.stat-prefetch off`, and two
  independent `glusterfs` FUSE clients (entry, attribute and negative
  timeouts 0), one per node, each node's spool on its own client and its
  own spoolgate-fs view (`shared = yes`).  Skipped (77) with the reason
  when glusterd or the mount cannot start.  Everything (views, clients,
  volume, glusterd) is stopped and unmounted whatever happened.
* MooseFS: a real MooseFS 3.0: mfsmaster and one mfschunkserver inside a
  private network namespace (the chunkserver refuses loopback), listening
  on a veth address there, two `mfsmount` clients started in that
  namespace with nsenter --net (their mounts are in ours) with the data,
  attribute and entry caches off, one per node.  Skipped (77) with the
  reason when a piece cannot start; mounts, daemons and the namespace are
  always removed.

The scenario, the same on all three:
1. latency: node-a alone, its relay slots held by messages to a tarpit;
   node-b starts; messages sent to node-a are delivered by node-b (found
   by polling queue/): each one's time from node-a's 250 to the sink;
   and the time a message sent to node-a takes to show in node-b's
   spoolgate-fs view of inbox/ (when FUSE is there).
2. N messages in through both nodes (smtplib, eight connections);
   at 20 % delivered node-a is stopped (SIGSTOP); its claims in active/
   are the messages in flight; node-b logs node-takeover (node=node-a
   by=node-b) once the lease ran out and delivers them; node-a is
   continued, logs node-stalled and relay-claim-lost, recording nothing;
   at half way (or 40 messages later) node-b is killed (SIGKILL); node-a
   takes node-b's claims over.
3. checks: every message reached the sink; a Message-ID seen twice is one
   of the messages in flight at the stop or the kill; each message has
   exactly one record (sent/), queue/ and active/ are empty, no node
   took a live node for dead; node-b restarts under its name (its
   predecessor is dead); a third gateway named node-a while node-a lives
   is refused at start.
"""

import collections
import os
import queue
import re
import shutil
import signal
import smtplib
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import log, queued_id, wait_until

RUN = uuid.uuid4().hex[:8]
N_LOCAL = int(os.environ.get('SPOOLGATE_SHARED_N_LOCAL') or 600)
N_GLUSTER = int(os.environ.get('SPOOLGATE_SHARED_N') or 1000)
SINK_DELAY = 0.05		# seconds per message at the sink: deliveries stay in flight
MAX_DELIVERIES = 2		# per node: the takeover comes before the last messages went
LEASE = 4			# lease_time of the nodes on local disk; heartbeat_interval 1
LEASE_GLUSTER = 10		# on GlusterFS: on a loaded machine its operations stall for seconds
GLUSTER_HOST = '127.0.0.2'	# glusterd refuses loopback 127.0.0.1 bricks
MFS_NETNS = 'sgmfs-%s' % RUN	# MooseFS's private network namespace
MFS_HOST = '10.213.7.1'		# its master and chunkserver there, on a veth: the chunkserver refuses loopback


# ---------------------------------------------------------------- the sink

class Sink:
    """A raw SMTP sink: counts each accepted message by its Message-ID.
    While `hold` is set, new connections get no greeting (a tarpit)."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.lock = threading.Lock()
        self.seen = collections.Counter()
        self.first = {}			# Message-ID -> monotonic time of its first delivery
        self.qid = {}			# Message-ID -> the queue id in its Received: (for the logs)
        self.hold = threading.Event()
        self.server = harness.serve_tcp(self._handler())
        self.port = self.server.server_address[1]

    def _handler(self):
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.converse()
                except OSError:		# a node killed in the middle: its connection is reset
                    pass

            def converse(self):
                while sink.hold.is_set():
                    time.sleep(0.05)
                w = self.wfile
                w.write(b'220 sink ESMTP\r\n')
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb in (b'EHLO', b'HELO'):
                        w.write(b'250-sink\r\n250 PIPELINING\r\n')
                    elif verb == b'DATA':
                        w.write(b'354 go\r\n')
                        msgid = qid = None
                        while True:
                            l = self.rfile.readline(65536)
                            if not l or l == b'.\r\n':
                                break
                            m = re.match(rb'(?i)message-id:\s*<([^>]+)>', l)
                            if m and msgid is None:
                                msgid = m.group(1).decode()
                            m = re.search(rb'\bid (\d+\.M\d+P\d+Q\d+)', l)
                            if m and qid is None:
                                qid = m.group(1).decode()
                        if not l:
                            return
                        time.sleep(sink.delay)
                        with sink.lock:
                            sink.seen[msgid] += 1
                            sink.first.setdefault(msgid, time.monotonic())
                            sink.qid[msgid] = qid
                        w.write(b'250 2.0.0 ok\r\n')
                    elif verb == b'QUIT':
                        w.write(b'221 bye\r\n')
                        return
                    else:
                        w.write(b'250 ok\r\n')
        return Handler

    def unique(self, prefix=''):
        with self.lock:
            return sum(1 for k in self.seen if k and k.startswith(prefix))

    def stop(self):
        self.hold.clear()
        harness.stop_tcp(self.server)


# ---------------------------------------------------------------- helpers

def message(msgid, to):
    return ('From: a@example.org\r\nTo: %s\r\nMessage-ID: <%s>\r\nSubject: %s\r\n\r\nbody %s\r\n'
            % (to, msgid, msgid, msgid)).encode()


def send_one(gw, msgid, to='r@example.net'):
    """One message through gw's listener: (queue id, monotonic time of the 250)."""
    with smtplib.SMTP('127.0.0.1', gw.port, local_hostname='shared.example', timeout=60) as s:
        s.ehlo()
        s.mail('a@example.org')
        s.rcpt(to)
        code, text = s.data(message(msgid, to))
    if code != 250:
        raise AssertionError('%s: %d %s' % (msgid, code, text))
    return queued_id(text), time.monotonic()


def send_many(gws, msgids, threads=8):
    """Every msgid through the gateways in turn, from `threads` connections."""
    work = queue.Queue()
    for i, m in enumerate(msgids):
        work.put((i, m))
    errors = []

    def worker(k):
        gw = gws[k % len(gws)]
        try:
            with smtplib.SMTP('127.0.0.1', gw.port, local_hostname='shared.example', timeout=120) as s:
                while True:
                    try:
                        _, m = work.get_nowait()
                    except queue.Empty:
                        return
                    s.sendmail('a@example.org', ['r@example.net'], message(m, 'r@example.net'))
        except Exception as e:		# recorded, checked below
            errors.append('%s: %r' % (gw.name, e))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    return errors


def claims_of(spool, node):
    """Queue ids of node's claims (the messages it has in flight): in
    active/, and parked in tmp/ (<claim>.old: the claim being finished)."""
    names = os.listdir(os.path.join(spool, 'active'))
    names += [n for n in os.listdir(os.path.join(spool, 'tmp')) if n.endswith('.old')]
    return [n.split('@')[0] for n in names if '@%s,' % node in n]


def msgid_of(spool, qid):
    try:
        with open(os.path.join(spool, 'data', qid), 'rb') as f:
            head = f.read(4096)
    except OSError:
        return None
    m = re.search(rb'(?im)^message-id:\s*<([^>]+)>', head)
    return m.group(1).decode() if m else None


def node_cfg(name, spool, sink, tarpit, shared, lease=LEASE):
    return {
        'dir': spool, 'hostname': name, 'shared': shared, 'heartbeat_interval': 1,
        'lease_time': lease, 'poll_interval_ms': 200,
        'smarthost': '127.0.0.1:%d' % sink.port,
        'routes': {'hold.test': '127.0.0.1:%d' % tarpit.port},
        'retry_min': 1, 'retry_max': 2, 'scan_interval': 5, 'max_deliveries': MAX_DELIVERIES,
        'connection_idle_timeout': 1, 'command_timeout': 60,
    }


for _k in ('shared', 'heartbeat_interval', 'lease_time', 'poll_interval_ms'):
    harness._SECTION.setdefault(_k, 'spool')


# ---------------------------------------------------------------- the scenario

class Scenario:
    """The test proper, on whatever spools setUp() gave: self.spool_a and
    self.spool_b (two views of one spool), self.shared, self.n."""

    fs_views = False

    def node(self, name, spool):
        gw = harness.Instance(name, **node_cfg(name, spool, self.sink, self.tarpit, self.shared, self.lease))
        self.addCleanup(gw.cleanup)
        gw.spool = spool		# path(), listdir() read the shared spool
        return gw

    def test_nodes_share_the_spool(self):
        self.sink = Sink(SINK_DELAY)
        self.addCleanup(self.sink.stop)
        self.tarpit = Sink()
        self.addCleanup(self.tarpit.stop)
        a = self.node('node-a', self.spool_a)
        b = self.node('node-b', self.spool_b)
        a.start_smtpd()
        self.measure_latency(a, b)
        self.stop_and_kill(a, b)

    # -- 1. latency: node-a's messages delivered by node-b
    def measure_latency(self, a, b):
        self.tarpit.hold.set()
        for i in range(MAX_DELIVERIES):	# node-a's slots wait for the tarpit's greeting
            send_one(a, 'hold-%s-%d@test' % (RUN, i), 'x@hold.test')
        wait_until(lambda: len(claims_of(a.spool, 'node-a')) == MAX_DELIVERIES, 30, "node-a's claims")
        b.start_smtpd()
        if self.fs_views:
            b.start_fs()
        lat = []
        for i in range(10):
            m = 'lat-%s-%d@test' % (RUN, i)
            _, t250 = send_one(a, m)
            wait_until(lambda: m in self.sink.first, 30, '%s delivered by node-b' % m, interval=0.005)
            lat.append((self.sink.first[m] - t250) * 1000)
        self.assertFalse(any('lat-' in (msgid_of(a.spool, q) or '') for q in claims_of(a.spool, 'node-a')))
        # scan_interval is 5 s: only inotify (local) or the poll of queue/ (shared) is this quick
        self.assertLess(max(lat), 3000, 'node-b found node-a\'s records by its scan, not at once')
        lat.sort()
        log('A->B relay latency (node-a 250 -> sink, delivered by node-b, %s): '
            'min %.0f ms, median %.0f ms, max %.0f ms'
            % ('polling queue/ every 200 ms' if self.shared else 'inotify', lat[0], lat[len(lat) // 2], lat[-1]))
        self.assertIn('id=', b.read_log('smtpd'))
        if self.fs_views:
            view = []
            for i in range(5):
                m = 'box-%s-%d@test' % (RUN, i)
                box = os.path.join(b.mnt, 'inbox', 'bob')
                before = set(os.listdir(box)) if os.path.isdir(box) else set()
                _, t250 = send_one(a, m, 'bob@localhost')
                wait_until(lambda: os.path.isdir(box) and set(os.listdir(box)) - before, 10,
                           "node-a's message in node-b's inbox/bob/", interval=0.002)
                view.append((time.monotonic() - t250) * 1000)
            view.sort()
            self.assertLess(view[-1], 3000, "node-a's arrival late in node-b's view")
            log("A->B inbox latency (node-a 250 -> listed in node-b's spoolgate-fs view): "
                'min %.1f ms, median %.1f ms, max %.1f ms' % (view[0], view[len(view) // 2], view[-1]))
        self.tarpit.hold.clear()
        wait_until(lambda: self.tarpit.unique('hold-') == MAX_DELIVERIES, 60, 'the held messages delivered')

    # -- 2. N messages, SIGSTOP of node-a, SIGKILL of node-b
    def stop_and_kill(self, a, b):
        n = self.n
        ids = ['m-%s-%04d@test' % (RUN, i) for i in range(n)]
        t0 = time.monotonic()
        errors = send_many([a, b], ids)
        self.assertEqual(errors, [], 'every message accepted')
        log('%d messages in through both nodes in %.1fs' % (n, time.monotonic() - t0))

        wait_until(lambda: self.sink.unique('m-') >= n // 5, 120, '20 % delivered', interval=0.01)
        mark_b = b._log_size('smtpd')
        os.kill(a.procs['smtpd'].pid, signal.SIGSTOP)
        self.assertNotIn('event=node-takeover', b.read_log('smtpd')[:mark_b], 'node-b took a live node-a for dead')
        t_stop = time.monotonic()
        inflight = {msgid_of(a.spool, q) for q in claims_of(a.spool, 'node-a')}
        log('node-a stopped with %d claims in flight (%d delivered)' % (len(inflight), self.sink.unique('m-')))
        try:
            wait_until(lambda: re.search(r'event=node-takeover .*node=node-a by=node-b', b.read_log('smtpd', mark_b)),
                       self.lease + 20, "node-b's takeover of node-a's claims")
            log('node-b took node-a\'s claims over %.1fs after the stop (lease %ds)' % (time.monotonic() - t_stop, self.lease))
        finally:
            os.kill(a.procs['smtpd'].pid, signal.SIGCONT)
        if inflight:
            wait_until(lambda: 'event=relay-claim-lost' in a.read_log('smtpd'), 30,
                       'node-a noticing its lost claims')
        wait_until(lambda: 'event=node-stalled' in a.read_log('smtpd'), 10, 'node-a saying it missed its lease')
        log('node-a continued: %d relay-claim-lost' % a.read_log('smtpd').count('event=relay-claim-lost'))

        target = min(n - 20, max(n // 2, self.sink.unique('m-') + 40))
        wait_until(lambda: self.sink.unique('m-') >= target, 120, '%d delivered' % target, interval=0.01)
        mark_a = a._log_size('smtpd')
        b.kill('smtpd')
        self.assertNotIn('event=node-takeover', a.read_log('smtpd')[:mark_a], 'node-a took a live node-b for dead')
        inflight_b = {msgid_of(b.spool, q) for q in claims_of(b.spool, 'node-b')}
        t_kill = time.monotonic()
        log('node-b killed with %d claims in flight (%d delivered)' % (len(inflight_b), self.sink.unique('m-')))
        inflight |= inflight_b
        if inflight_b:
            wait_until(lambda: re.search(r'event=node-takeover .*node=node-b by=node-a', a.read_log('smtpd', mark_a)),
                       self.lease + 20, "node-a's takeover of node-b's claims")
            log("node-a took node-b's claims over %.1fs after the kill" % (time.monotonic() - t_kill))

        wait_until(lambda: self.sink.unique('m-') == n, 240, 'every message at the sink', interval=0.1)
        wait_until(lambda: not a.listdir('queue') and not a.listdir('active') and not a.parked_claims(), 60,
                   'queue/ and active/ empty, no claim parked in tmp/')
        dups = {m: c for m, c in self.sink.seen.items() if m and m.startswith('m-') and c > 1}
        log('sink: %d messages, %d delivered twice (in flight at the stop or kill: %d)'
            % (self.sink.unique('m-'), len(dups), len(inflight)))
        self.assertTrue(set(dups) <= inflight, 'duplicates not in flight: %s'
                        % sorted('%s (id=%s)' % (m, self.sink.qid.get(m)) for m in set(dups) - inflight))
        sent = [x for x in a.listdir('sent') if msgid_of(a.spool, x) in set(ids)]
        self.assertEqual(len(sent), n, 'one record per message in sent/')
        self.assertEqual(a.listdir('failed'), [])

        # node-b's restart: same name on this machine, its predecessor dead
        b.start_smtpd()
        self.assertIn('event=node-registered node=node-b', b.read_log('smtpd'))
        # a third gateway named node-a while node-a lives: refused
        c = self.node('node-a', self.spool_b)
        with self.assertRaises(harness.DaemonError) as cm:
            c.start_smtpd()
        self.assertIn('node name "node-a" is in use', str(cm.exception))
        log('a second live node-a refused: %s' % re.search(r'node name .*', str(cm.exception)).group(0)[:160])


class LocalSpool(Scenario, unittest.TestCase):
    """Both nodes on one local directory."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='spoolgate-shared-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.spool_a = self.spool_b = os.path.join(self.dir, 'spool')
        os.mkdir(self.spool_a, 0o755)
        if harness.IS_ROOT:
            harness.ensure_user()
            pw = harness.pwd.getpwnam(harness.USER)
            os.chown(self.spool_a, pw.pw_uid, pw.pw_gid)
        self.shared = False
        self.lease = LEASE
        self.n = N_LOCAL
        self.fs_views = harness.fuse_available() is None


# ---------------------------------------------------------------- GlusterFS

class Volume:
    """What the volumes of a shared filesystem have in common: a directory
    of the test's own, `clients` FUSE mounts of one volume in it."""

    def __init__(self, prefix, clients):
        self.clients = clients
        self.dir = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.dir, 0o755)	# the daemons drop root: they must reach the mounts
        self.mounts = []

    def new_mountpoint(self, i):
        mnt = os.path.join(self.dir, 'client%d' % i)
        os.mkdir(mnt)
        return mnt

    def wait_mounted(self, mnt):
        """After a mount command that succeeded: the mount is there, or skip."""
        self.mounts.append(mnt)
        try:
            wait_until(lambda: harness.is_mounted(mnt) and os.path.isdir(mnt), 20, 'the mount %s' % mnt)
        except AssertionError as e:
            raise unittest.SkipTest(str(e))
        os.chmod(mnt, 0o755)

    def unmount_all(self):
        for mnt in self.mounts:
            harness.unmount(mnt)

    def remove_dir(self):
        if not any(harness.is_mounted(m) for m in self.mounts):
            shutil.rmtree(self.dir, ignore_errors=True)


class GlusterVolume(Volume):
    """glusterd on 127.0.0.2 in a directory of its own, one volume with one
    brick, `clients` FUSE clients (two by default).  start() raises
    unittest.SkipTest with the reason when it cannot; stop() undoes
    whatever start() did."""

    def __init__(self, clients=2):
        super().__init__('spoolgate-gluster-', clients)
        self.sock = os.path.join(self.dir, 'run', 'glusterd.socket')
        self.glusterd = None
        self.volume = 'sg%s' % RUN
        self.created = self.started = False

    def cli(self, *args, check=True):
        r = subprocess.run(['gluster', '--mode=script', '--glusterd-sock=%s' % self.sock] + list(args),
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise unittest.SkipTest('gluster %s: %s' % (' '.join(args), (r.stdout + r.stderr).strip()))
        return r

    def start(self):
        for b in ('glusterd', 'gluster', 'glusterfs'):
            if shutil.which(b) is None and not os.path.exists('/usr/sbin/' + b):
                raise unittest.SkipTest('%s is not installed (Debian glusterfs-server, glusterfs-client)' % b)
        if harness.fuse_available():
            raise unittest.SkipTest(harness.fuse_available())
        if not harness.IS_ROOT:
            raise unittest.SkipTest('glusterd and its FUSE clients need root')
        try:
            with socket.socket() as s:
                s.bind((GLUSTER_HOST, 24007))
        except OSError as e:
            raise unittest.SkipTest('%s:24007 is taken (another glusterd?): %s' % (GLUSTER_HOST, e))
        for d in ('state', 'run', 'log', 'brick'):
            os.mkdir(os.path.join(self.dir, d))
        vol = os.path.join(self.dir, 'glusterd.vol')
        with open(vol, 'w') as f:
            f.write('volume management\n'
                    '    type mgmt/glusterd\n'
                    '    option working-directory %s/state\n'
                    '    option run-directory %s/run\n'
                    '    option glusterd-sockfile %s\n'
                    '    option transport-type socket\n'
                    '    option transport.socket.bind-address %s\n'
                    '    option ping-timeout 0\n'
                    'end-volume\n' % (self.dir, self.dir, self.sock, GLUSTER_HOST))
        pidfile = os.path.join(self.dir, 'glusterd.pid')
        r = subprocess.run(['glusterd', '-f', vol, '-p', pidfile, '-l', os.path.join(self.dir, 'log', 'glusterd.log')],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise unittest.SkipTest('glusterd did not start: %s' % (r.stdout + r.stderr).strip())
        try:
            wait_until(lambda: os.path.exists(pidfile) and os.path.exists(self.sock), 20, 'glusterd')
        except AssertionError as e:
            raise unittest.SkipTest('glusterd: %s' % e)
        with open(pidfile) as f:
            self.glusterd = int(f.read().strip())
        self.cli('volume', 'create', self.volume, '%s:%s/brick' % (GLUSTER_HOST, self.dir), 'force')
        self.created = True
        self.cli('volume', 'set', self.volume, 'performance.stat-prefetch', 'off')
        self.cli('volume', 'start', self.volume)
        self.started = True
        for i in range(1, self.clients + 1):
            mnt = self.new_mountpoint(i)
            r = subprocess.run(['glusterfs', '--volfile-server=%s' % GLUSTER_HOST, '--volfile-id=%s' % self.volume,
                                '--entry-timeout=0', '--attribute-timeout=0', '--negative-timeout=0',
                                '-l', os.path.join(self.dir, 'log', 'client%d.log' % i), mnt],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise unittest.SkipTest('glusterfs mount: %s' % (r.stdout + r.stderr).strip())
            self.wait_mounted(mnt)
        log('GlusterFS volume %s: brick %s:%s/brick, clients %s' % (self.volume, GLUSTER_HOST, self.dir,
                                                                      ' '.join(self.mounts)))

    def stop(self):
        self.unmount_all()
        if self.started:
            self.cli('volume', 'stop', self.volume, 'force', check=False)
        if self.created:
            self.cli('volume', 'delete', self.volume, check=False)
        if self.glusterd:
            try:
                os.kill(self.glusterd, signal.SIGTERM)
                wait_until(lambda: not os.path.exists('/proc/%d' % self.glusterd) or
                           open('/proc/%d/stat' % self.glusterd).read().split()[2] == 'Z', 10, 'glusterd to exit')
            except (OSError, AssertionError):
                try:
                    os.kill(self.glusterd, signal.SIGKILL)
                except OSError:
                    pass
        # bricks of this volume only (their command line names our directory)
        for pid in os.listdir('/proc'):
            if pid.isdigit():
                try:
                    with open('/proc/%s/cmdline' % pid, 'rb') as f:
                        cmd = f.read()
                except OSError:
                    continue
                if b'glusterfsd' in cmd and self.dir.encode() in cmd:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
        self.remove_dir()


class MooseVolume(Volume):
    """MooseFS 3.0: mfsmaster and mfschunkserver (one, its chunks in a
    directory of its own) inside a private network namespace, where they
    listen on MFS_HOST of a veth (the chunkserver refuses loopback), and
    two mfsmount FUSE clients started in that namespace (nsenter --net:
    the mounts are in this mount namespace, seen by the gateways) with
    the data, attribute and entry caches off.  start() raises
    unittest.SkipTest with the reason when it cannot; stop() undoes
    whatever start() did."""

    def __init__(self, clients=2):
        super().__init__('spoolgate-moosefs-', clients)
        self.netns = False
        self.daemons = []		# (binary, config) started

    def run(self, argv, what, netns=True):
        if netns:
            argv = ['nsenter', '--net=/run/netns/%s' % MFS_NETNS] + argv
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise unittest.SkipTest('%s: %s' % (what, e))
        if r.returncode != 0:
            raise unittest.SkipTest('%s: %s' % (what, (r.stdout + r.stderr).strip()[-400:]))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def start(self):
        for b in ('mfsmaster', 'mfschunkserver', 'mfsmount', 'nsenter', 'ip'):
            if shutil.which(b) is None:
                raise unittest.SkipTest('%s is not installed (Debian moosefs-master, moosefs-chunkserver, '
                                        'moosefs-client, util-linux, iproute2)' % b)
        if harness.fuse_available():
            raise unittest.SkipTest(harness.fuse_available())
        if not harness.IS_ROOT:
            raise unittest.SkipTest('a network namespace and the FUSE clients need root')
        for d in ('master', 'cs', 'chunks'):
            os.mkdir(os.path.join(self.dir, d))
        shutil.copy('/var/lib/mfs/metadata.mfs.empty', os.path.join(self.dir, 'master', 'metadata.mfs'))
        common = 'WORKING_USER = root\nWORKING_GROUP = root\n'
        master = self.write('mfsmaster.cfg', common +
                            'DATA_PATH = %s/master\nEXPORTS_FILENAME = %s/mfsexports.cfg\n'
                            'TOPOLOGY_FILENAME = %s/mfstopology.cfg\n'
                            'MATOML_LISTEN_HOST = %s\nMATOCS_LISTEN_HOST = %s\nMATOCL_LISTEN_HOST = %s\n' %
                            (self.dir, self.dir, self.dir, MFS_HOST, MFS_HOST, MFS_HOST))
        self.write('mfsexports.cfg', '* / rw,alldirs,maproot=0\n')
        self.write('mfstopology.cfg', '')
        self.write('mfshdd.cfg', '%s/chunks\n' % self.dir)
        chunk = self.write('mfschunkserver.cfg', common +
                           'DATA_PATH = %s/cs\nHDD_CONF_FILENAME = %s/mfshdd.cfg\nMASTER_HOST = %s\n'
                           'BIND_HOST = %s\nCSSERV_LISTEN_HOST = %s\nHDD_LEAVE_SPACE_DEFAULT = 256MiB\n' %
                           (self.dir, self.dir, MFS_HOST, MFS_HOST, MFS_HOST))
        self.run(['ip', 'netns', 'add', MFS_NETNS], 'ip netns add', netns=False)
        self.netns = True
        for argv in (['link', 'set', 'lo', 'up'], ['link', 'add', 'mfs0', 'type', 'veth', 'peer', 'name', 'mfs1'],
                     ['addr', 'add', MFS_HOST + '/24', 'dev', 'mfs0'], ['link', 'set', 'mfs0', 'up'],
                     ['link', 'set', 'mfs1', 'up']):
            self.run(['ip', '-n', MFS_NETNS] + argv, 'ip ' + ' '.join(argv), netns=False)
        for binary, cfg in (('mfsmaster', master), ('mfschunkserver', chunk)):
            self.run([binary, '-c', cfg, 'start'], binary)
            self.daemons.append((binary, cfg))
        for i in range(1, self.clients + 1):
            mnt = self.new_mountpoint(i)
            self.run(['mfsmount', mnt, '-H', MFS_HOST, '-o', 'mfscachemode=DIRECT,mfsattrcacheto=0,mfsentrycacheto=0,'
                      'mfsdirentrycacheto=0,mfsnegentrycacheto=0'], 'mfsmount')
            self.wait_mounted(mnt)
        probe = os.path.join(self.mounts[0], '.probe')
        try:	# a write needs a chunkserver registered with the master
            wait_until(lambda: self.try_write(probe), 30, 'a write through MooseFS (the chunkserver registered)')
        except AssertionError as e:
            raise unittest.SkipTest(str(e))
        os.unlink(probe)
        log('MooseFS in netns %s: master and chunkserver on %s, chunks in %s/chunks, clients %s' %
            (MFS_NETNS, MFS_HOST, self.dir, ' '.join(self.mounts)))

    @staticmethod
    def try_write(path):
        try:
            with open(path, 'w') as f:
                f.write('x')
                f.flush()
                os.fsync(f.fileno())
            return True
        except OSError:
            return False

    def stop(self):
        self.unmount_all()
        for binary, cfg in reversed(self.daemons):
            try:
                subprocess.run([binary, '-c', cfg, 'stop'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.netns:	# its veth goes with it
            subprocess.run(['ip', 'netns', 'del', MFS_NETNS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)
        self.remove_dir()


class Shared(Scenario):
    """Both nodes on one volume of a shared filesystem, each through its own client."""
    volume_class = None

    def setUp(self):
        self.vol = self.volume_class()
        self.addCleanup(self.vol.stop)
        self.vol.start()
        self.spool_a = os.path.join(self.vol.mounts[0], 'spool')
        self.spool_b = os.path.join(self.vol.mounts[1], 'spool')
        os.mkdir(self.spool_a, 0o755)
        harness.ensure_user()
        pw = harness.pwd.getpwnam(harness.USER)
        os.chown(self.spool_a, pw.pw_uid, pw.pw_gid)
        wait_until(lambda: os.path.isdir(self.spool_b), 10, 'the spool seen by the second client')
        self.shared = True
        self.lease = LEASE_GLUSTER
        self.n = N_GLUSTER
        self.fs_views = True


class Gluster(Shared, unittest.TestCase):
    """GlusterFS: glusterd on 127.0.0.2, one brick, two glusterfs clients."""
    volume_class = GlusterVolume


class MooseFS(Shared, unittest.TestCase):
    """MooseFS: master and chunkserver in a private network namespace, two mfsmount clients."""
    volume_class = MooseVolume


if __name__ == '__main__':
    harness.main()
