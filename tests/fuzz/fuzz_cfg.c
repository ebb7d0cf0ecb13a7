/*
 * NAME
 *	fuzz_cfg - the configuration file (cfg.h)
 * DESCRIPTION
 *	The bytes are written to an anonymous file (memfd) and read with
 *	cfg_load() through /proc/self/fd/N, as the daemons read their file.
 *	A refusal must come with a message that names the file; an accepted
 *	file must give a configuration the daemons can use: every string
 *	they need is set, listen and smarthost split into host and port,
 *	retry_max is not below retry_min, the lists are within CFG_MAX_LIST,
 *	every scalar key prints through cfg_value(), and each [forwards]
 *	line is two addresses, its key in local_domains, found by
 *	forward_find().  cfg_free() follows
 *	either way (the daemons call it after an error too).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/addr.h"
#include "common/cfg.h"
#include "common/forward.h"

static const char *const scalar_keys[][2] = {
	{ "spool", "dir" }, { "spool", "user" }, { "spool", "hostname" },
	{ "smtpd", "banner" }, { "smtpd", "max_line" },
	{ "smtpd", "max_message_size" }, { "relay", "smarthost" }, { "relay", "keep_sent" },
	{ "fs", "mountpoint" }, { "fs", "allow_other" },
};

static void
check_usable(const struct cfg *cfg)
{
	char host[256], value[8192];
	unsigned port;
	size_t i;

	FUZZ_CHECK(cfg->spool_dir != NULL && cfg->spool_dir[0] != '\0', "no spool dir");
	FUZZ_CHECK(cfg->mountpoint != NULL && cfg->mountpoint[0] != '\0', "no mountpoint");
	FUZZ_CHECK(cfg->n_listeners >= 1 && cfg->n_listeners <= CFG_MAX_LISTENERS, "%zu listeners", cfg->n_listeners);
	for (i = 0; i < cfg->n_listeners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];

		FUZZ_CHECK(l->listen != NULL && cfg_split_hostport(l->listen, host, sizeof(host), &port) == 0,
		    "listener %s: listen '%s'", l->name, l->listen ? l->listen : "(null)");
		FUZZ_CHECK(l->tls != NULL && (strcmp(l->tls, "none") == 0 ||
		    (l->tls_cert_file != NULL && l->tls_key_file != NULL)), "listener %s: tls without a key", l->name);
		FUZZ_CHECK(cfg_listener_find(cfg, l->name) == l, "listener %s: not found by name", l->name);
	}
	FUZZ_CHECK(cfg->smarthost != NULL && cfg_split_hostport(cfg->smarthost, host, sizeof(host), &port) == 0,
	    "smarthost '%s'", cfg->smarthost ? cfg->smarthost : "(null)");
	FUZZ_CHECK(cfg->retry_min <= cfg->retry_max, "retry %u > %u", cfg->retry_min, cfg->retry_max);
	FUZZ_CHECK(cfg->n_local_domains <= CFG_MAX_LIST && cfg->n_mailboxes <= CFG_MAX_LIST &&
	    cfg->n_relay_networks <= CFG_MAX_LIST, "a list over CFG_MAX_LIST");
	for (i = 0; i < cfg->n_local_domains; i++)
		FUZZ_CHECK(cfg->local_domains[i] != NULL && cfg->local_domains[i][0] != '\0', "empty domain");
	/* [forwards]: addresses, the keys in local_domains, each found by forward_find() */
	FUZZ_CHECK(cfg->n_forwards <= CFG_MAX_FORWARDS, "%zu forwards", cfg->n_forwards);
	for (i = 0; i < cfg->n_forwards; i++) {
		const char *from = cfg->forwards[i].from;
		int at = addr_split(from);

		FUZZ_CHECK(at > 0 && cfg_domain_is_local(cfg, from + at + 1), "forward key '%s' not local", from);
		FUZZ_CHECK(addr_split(cfg->forwards[i].to) > 0, "forward target '%s'", cfg->forwards[i].to);
		FUZZ_CHECK(forward_find(cfg, from) == cfg->forwards[i].to, "forward '%s' not found", from);
	}
	for (i = 0; i < sizeof(scalar_keys) / sizeof(scalar_keys[0]); i++)
		FUZZ_CHECK(cfg_value(cfg, scalar_keys[i][0], scalar_keys[i][1], value, sizeof(value)) == 0,
		    "cfg_value %s.%s", scalar_keys[i][0], scalar_keys[i][1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[1024] = "";
	struct cfg cfg;
	int fd, r;

	if ((fd = memfd_create("spoolgate.conf", MFD_CLOEXEC)) < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	memset(&cfg, 0, sizeof(cfg));
	r = cfg_load(path, &cfg, err, sizeof(err));
	if (r == 0)
		check_usable(&cfg);
	else
		FUZZ_CHECK(strstr(err, path) != NULL, "error without the file name: '%s'", err);
	cfg_free(&cfg);
	close(fd);
	return 0;
}
