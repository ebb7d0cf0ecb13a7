"""peers - real SMTP peers for the integration tests, on loopback only.

Reusable pieces for tests that need a TLS- and AUTH-capable server:

    ca = TestCA(dir)                   a private CA made with openssl(1);
    cert, key = ca.issue('mx', dns=['mx.test'], ips=['127.0.0.1'])
                                       a server certificate signed by it.
    pf = Postfix(dir, ca, users={'me@mail.test': 'pw'}, services=[...])
    pf.start() / pf.stop()             a private Postfix instance (extra_main:
                                       more main.cf settings, e.g. a
                                       relayhost: Postfix as a client): its own
                                       config_directory, queue_directory,
                                       data_directory and log (maillog_file
                                       through postlogd), never /etc/postfix;
                                       Cyrus SASL with a sasldb of its own
                                       (PLAIN LOGIN SCRAM-SHA-256); virtual
                                       Maildir delivery for domain dest.test.
                                       Stopped (postfix stop, then the
                                       master's process group killed) by
                                       stop(), atexit, and cleanup().

Each Service is one smtpd listener in master.cf with its own -o overrides:
Service('starttls', tls='may'), Service('smtps', wrapper=True),
Service('plain', tls='none', auth=False), Service('other', cert='other'),
Service('plainauth', tls='none', mechs='plain', auth_only=False).

Needs root (Postfix's master) and the Debian packages postfix, sasl2-bin,
libsasl2-modules, libsasl2-modules-db (scripts/deps.sh).
"""

import atexit
import glob
import os
import pwd
import grp
import re
import shutil
import signal
import subprocess
import time

import harness
from harness import free_port, log, wait_until

POSTFIX = '/usr/sbin/postfix'
SASLPASSWD2 = '/usr/sbin/saslpasswd2'
OPENSSL = '/usr/bin/openssl'
DEST_DOMAIN = 'dest.test'
REALM = 'mail.test'

_running = []


def missing():
    """Why these peers cannot run here, or None."""
    if os.geteuid() != 0:
        return 'a private Postfix needs root'
    for path in (POSTFIX, SASLPASSWD2, OPENSSL):
        if not os.access(path, os.X_OK):
            return '%s is missing (scripts/deps.sh installs it)' % path
    if not glob.glob('/usr/lib/x86_64-linux-gnu/sasl2/libscram.so*') and \
            not glob.glob('/usr/lib/*/sasl2/libscram.so*'):
        return 'Cyrus SASL SCRAM module missing (libsasl2-modules)'
    if not glob.glob('/usr/lib/*/sasl2/libsasldb.so*'):
        return 'Cyrus SASL sasldb module missing (libsasl2-modules-db)'
    return None


def _run(argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, **kw)
    if r.returncode != 0:
        raise AssertionError('%s failed (%d): %s' % (' '.join(argv), r.returncode,
                                                     r.stdout.decode('utf-8', 'replace')))
    return r.stdout.decode('utf-8', 'replace')


class TestCA:
    """A private certificate authority in dir (ca.pem, ca.key)."""

    def __init__(self, dir, name='spoolgate test CA'):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.cert = os.path.join(dir, 'ca.pem')
        self.key = os.path.join(dir, 'ca.key')
        _run([OPENSSL, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
              '-nodes', '-keyout', self.key, '-out', self.cert, '-days', '2', '-subj', '/CN=' + name,
              '-addext', 'basicConstraints=critical,CA:TRUE',
              '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])

    def issue(self, label, dns=(), ips=()):
        """A server certificate and key (PEM, key mode 0600) for the names given."""
        key = os.path.join(self.dir, label + '.key')
        csr = os.path.join(self.dir, label + '.csr')
        cert = os.path.join(self.dir, label + '.pem')
        ext = os.path.join(self.dir, label + '.ext')
        san = ','.join(['DNS:' + d for d in dns] + ['IP:' + i for i in ips])
        cn = (list(dns) + list(ips))[0]
        with open(ext, 'w') as f:
            f.write('subjectAltName=%s\nextendedKeyUsage=serverAuth\n'
                    'basicConstraints=CA:FALSE\n' % san)
        _run([OPENSSL, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
              '-keyout', key, '-out', csr, '-subj', '/CN=' + cn])
        _run([OPENSSL, 'x509', '-req', '-in', csr, '-CA', self.cert, '-CAkey', self.key,
              '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext])
        os.chmod(key, 0o600)
        return cert, key


class Service:
    """One smtpd listener of the private Postfix."""

    def __init__(self, name, tls='may', wrapper=False, auth=True, cert=None, mechs=None,
                 auth_only=True):
        self.name = name
        self.tls = tls			# smtpd_tls_security_level
        self.wrapper = wrapper		# smtpd_tls_wrappermode (RFC 8314)
        self.auth = auth		# SASL offered (after TLS only)
        self.cert = cert		# label of another certificate, or None
        self.mechs = mechs		# smtpd_sasl_mechanism_filter ("plain"), or all three
        self.auth_only = auth_only	# smtpd_tls_auth_only: AUTH offered only after TLS
        self.port = free_port()

    @property
    def addr(self):
        return '127.0.0.1:%d' % self.port

    def master_line(self, certs):
        opts = ['syslog_name=postfix/%s' % self.name, 'smtpd_tls_security_level=%s' % self.tls]
        if self.wrapper:
            opts.append('smtpd_tls_wrappermode=yes')
        if not self.auth:
            opts += ['smtpd_sasl_auth_enable=no',
                     'smtpd_recipient_restrictions=permit_mynetworks,reject']
        if not self.auth_only:
            opts.append('smtpd_tls_auth_only=no')
        if self.mechs:
            opts.append('smtpd_sasl_mechanism_filter=%s' % self.mechs)
        if self.cert:
            cert, key = certs[self.cert]
            opts += ['smtpd_tls_cert_file=%s' % cert, 'smtpd_tls_key_file=%s' % key]
        return '127.0.0.1:%d inet n - n - - smtpd %s\n' % (
            self.port, ' '.join('-o ' + o for o in opts))


_MASTER_TAIL = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix instance in dir: submission peer with TLS and SASL."""

    def __init__(self, dir, ca, cert, users, services, extra_certs=None, extra_main=None):
        self.dir = dir
        self.conf = os.path.join(dir, 'etc')
        self.queue = os.path.join(dir, 'queue')
        self.data = os.path.join(dir, 'data')
        self.vmail = os.path.join(dir, 'vmail')
        self.maillog = os.path.join(dir, 'maillog')
        self.sasldb = os.path.join(self.conf, 'sasldb2')
        self.services = {s.name: s for s in services}
        self.started = False
        pw = pwd.getpwnam('postfix')
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        for d in (self.conf, self.queue, self.data, self.vmail, os.path.join(self.conf, 'sasl')):
            os.makedirs(d, exist_ok=True)
        os.chmod(dir, 0o755)
        os.chown(self.data, self.uid, self.gid)
        os.chown(self.vmail, self.uid, self.gid)
        certs = dict(extra_certs or {})
        self._write_main(ca, cert, extra_main or {})
        with open(os.path.join(self.conf, 'master.cf'), 'w') as f:
            for s in services:
                f.write(s.master_line(certs))
            f.write(_MASTER_TAIL)
        with open(os.path.join(self.conf, 'sasl', 'smtpd.conf'), 'w') as f:
            f.write('pwcheck_method: auxprop\nauxprop_plugin: sasldb\n'
                    'mech_list: PLAIN LOGIN SCRAM-SHA-256\nsasldb_path: %s\n' % self.sasldb)
        for user, password in users.items():
            self.set_password(user, password)

    def _write_main(self, ca, cert, extra):
        cert_file, key_file = cert
        lines = {
            'compatibility_level': '3.6',
            'config_directory': self.conf,
            'queue_directory': self.queue,
            'data_directory': self.data,
            'meta_directory': '/etc/postfix',
            'mail_owner': 'postfix',
            'setgid_group': 'postdrop',
            'myhostname': REALM,
            'mydomain': REALM,
            'mydestination': '',
            'inet_interfaces': '127.0.0.1',
            'inet_protocols': 'ipv4',
            'mynetworks': '127.0.0.0/8',
            'alias_maps': '',
            'alias_database': '',
            'local_transport': 'error:no local delivery here',
            'relayhost': '',
            'default_transport': 'error:no relaying from the test peer',
            'maillog_file': self.maillog,
            'maillog_file_prefixes': self.dir,
            'virtual_mailbox_domains': DEST_DOMAIN,
            'virtual_mailbox_base': self.vmail,
            'virtual_mailbox_maps': 'static:box/',
            'virtual_uid_maps': 'static:%d' % self.uid,
            'virtual_gid_maps': 'static:%d' % self.gid,
            'virtual_minimum_uid': str(self.uid),
            'smtpd_tls_cert_file': cert_file,
            'smtpd_tls_key_file': key_file,
            'smtpd_tls_loglevel': '1',
            'smtpd_tls_auth_only': 'yes',
            'smtpd_sasl_auth_enable': 'yes',
            'smtpd_sasl_type': 'cyrus',
            'smtpd_sasl_path': 'smtpd',
            'cyrus_sasl_config_path': os.path.join(self.conf, 'sasl'),
            'smtpd_sasl_local_domain': '',
            'broken_sasl_auth_clients': 'no',
            # Only an authenticated client may hand mail over: AUTH is what is tested.
            'smtpd_recipient_restrictions': 'permit_sasl_authenticated, reject',
            'smtpd_relay_restrictions': 'permit_sasl_authenticated, reject',
            'smtpd_helo_required': 'yes',
            'biff': 'no',
            'smtputf8_enable': 'no',
            'in_flow_delay': '0',
            'smtpd_client_connection_rate_limit': '0',
            'anvil_rate_time_unit': '60s',
            'smtpd_error_sleep_time': '0',
            'smtpd_soft_error_limit': '100',
            'smtpd_hard_error_limit': '100',
            'smtpd_client_auth_rate_limit': '0',
            'maximal_queue_lifetime': '1h',
            'bounce_queue_lifetime': '1h',
        }
        lines.update(extra)	# e.g. a relayhost and smtp_tls_* for Postfix as a client
        with open(os.path.join(self.conf, 'main.cf'), 'w') as f:
            for k, v in lines.items():
                f.write('%s = %s\n' % (k, v))

    def set_password(self, user, password):
        """(Re)sets user's password in the sasldb (user: name@realm)."""
        name, _, realm = user.partition('@')
        subprocess.run([SASLPASSWD2, '-c', '-p', '-f', self.sasldb, '-u', realm or REALM, name],
                       input=password.encode(), check=True, timeout=30)
        os.chown(self.sasldb, 0, self.gid)
        os.chmod(self.sasldb, 0o640)

    def postfix(self, *args):
        return _run([POSTFIX, '-c', self.conf] + list(args))

    def start(self):
        self.postfix('check')
        self.postfix('start')
        self.started = True
        _running.append(self)
        for s in self.services.values():
            wait_until(lambda: self._listening(s.port), 15, 'Postfix listening on %s' % s.addr)
        log('private Postfix %s started: %s' % (self.conf, ', '.join(
            '%s=%s' % (s.name, s.addr) for s in self.services.values())))

    @staticmethod
    def _listening(port):
        import socket
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return True
        except OSError:
            return False

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, 'pid', 'master.pid')) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        """Always leaves no process behind: postfix stop, then SIGKILL to the master's group."""
        if not self.started:
            return
        self.started = False
        if self in _running:
            _running.remove(self)
        pid = self.master_pid()
        try:
            self.postfix('stop')
        except Exception as e:
            log('postfix stop failed: %s' % e)
        if pid:
            try:
                wait_until(lambda: not _alive(pid), 10, 'the Postfix master %d to exit' % pid)
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
        # Children of a killed master (smtpd, postlogd) have the config dir on their command line.
        for p in glob.glob('/proc/[0-9]*/cmdline'):
            try:
                with open(p, 'rb') as f:
                    cmd = f.read()
            except OSError:
                continue
            if self.conf.encode() in cmd:
                try:
                    os.kill(int(p.split('/')[2]), signal.SIGKILL)
                except OSError:
                    pass

    def cleanup(self):
        self.stop()

    def read_log(self):
        try:
            with open(self.maillog, 'r', errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def service_log(self, name):
        """The maillog lines of one service (its syslog_name)."""
        tag = 'postfix/%s/' % name
        return '\n'.join(l for l in self.read_log().splitlines() if tag in l)

    def delivered(self):
        """Paths of the messages in the virtual Maildir."""
        return sorted(glob.glob(os.path.join(self.vmail, 'box', 'new', '*')))


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_all():
    for pf in list(_running):
        try:
            pf.stop()
        except Exception as e:
            log('stopping Postfix %s failed: %s' % (pf.conf, e))


atexit.register(_stop_all)
