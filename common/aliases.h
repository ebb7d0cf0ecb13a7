/*
 * NAME
 *	aliases - the /etc/aliases table: parse, expand, reload on change
 * SYNOPSIS
 *	#include "aliases.h"
 *
 *	int aliases_load(const char *path, const struct aliases_opts *opts,
 *			struct aliases **out, char *err, size_t errlen);
 *	void aliases_release(struct aliases *a);
 *	size_t aliases_count(const struct aliases *a);
 *	const char *aliases_name_at(const struct aliases *a, size_t i);
 *	int aliases_refused_at(const struct aliases *a, size_t i,
 *			char *out, size_t outlen);
 *	int aliases_key(const char *addr, char *key, size_t keylen);
 *	int aliases_expand(const struct aliases *a, const char *key,
 *			const struct aliases_ctx *ctx, struct alias_expansion *out);
 *	void alias_expansion_free(struct alias_expansion *x);
 *
 *	struct aliases_source *aliases_source_new(const char *path,
 *			const struct aliases_opts *opts, char *err, size_t errlen);
 *	struct aliases *aliases_source_get(struct aliases_source *src);
 *	void aliases_source_free(struct aliases_source *src);
 *
 *	int aliases_source_configured(const struct cfg *cfg, uid_t daemon_uid,
 *			struct aliases_source **out, char *err, size_t errlen);
 *	bool aliases_cfg_is_local(const char *domain, void *cfg);
 *	int aliases_expand_address(struct aliases_source *src,
 *			const struct cfg *cfg, const char *addr, size_t max_rcpt,
 *			const char *id, struct alias_expansion *out);
 * DESCRIPTION
 *	The file has the format of sendmail's and Postfix's aliases(5), so
 *	Debian's default /etc/aliases loads unchanged:
 *
 *	    # comment
 *	    postmaster: root
 *	    root:       ops@example.org, \root
 *	    staff:      alice, bob,
 *	                carol@example.net        (a line that starts with
 *	                                          white space continues)
 *	    "john doe": john
 *	    lists:      :include:/etc/spoolgate/lists.txt
 *
 *	An entry is "name: target, target, ...".  The name is compared
 *	without regard to case; it may be a quoted string.  Empty lines and
 *	lines whose first non-blank is '#' are skipped, also between a line
 *	and its continuations.  A target is
 *	    name          a local name: looked up again (recursion)
 *	    \name         a local mailbox, never looked up again
 *	    user@domain   an address (a quoted local part is allowed); in a
 *	                  local domain (ctx->is_local) its local part is a
 *	                  local name again
 *	    :include:/abs/path  the targets listed in that file, one or more
 *	                  per line, comma-separated, '#' comments; read when
 *	                  the table is loaded (so a change of it is a change
 *	                  of the table), at most ALIASES_INCLUDE_DEPTH deep
 *	                  and ALIASES_INCLUDE_MAX bytes each
 *	    |command, /file  (quoted or not) never delivered: kept as a
 *	                  refused target, so that expansion can name it with
 *	                  its file:line; the other targets still work
 *
 *	Files (the table and every include; includes are opened O_NOFOLLOW)
 *	must be regular files owned by root or opts->daemon_uid, not
 *	writable by others, nor by the group unless it is root's: whoever
 *	can write the table chooses where mail goes.
 *
 *	Bounds: a physical line ALIASES_LINE_MAX octets, an entry (with its
 *	continuations) ALIASES_ENTRY_MAX, the table ALIASES_FILE_MAX octets
 *	and ALIASES_MAX_ENTRIES entries, ALIASES_MAX_TARGETS targets per
 *	entry after includes.  A NUL, a control character other than TAB or
 *	an octet over 0x7e in an entry (not in a comment) is an error.
 *
 *	aliases_load() reads and checks the whole table; on error it returns
 *	-errno and err holds "FILE:LINE: what" (the first error; a name
 *	defined twice names both lines).  The table is immutable and
 *	reference-counted: aliases_release() drops one reference.
 *
 *	aliases_name_at() is the i-th name of the table (from 0, in strictly
 *	increasing strcmp() order), NULL past the last.
 *
 *	aliases_refused_at() writes the i-th refused target of the table
 *	(from 0, in name order) as "FILE:LINE: alias NAME: |cmd" into out
 *	and returns 1, or 0 past the last one: spoolgate-newaliases warns
 *	with it.
 *
 *	aliases_key() makes the lookup key of an address "local@domain" (or
 *	a bare local part): its local part, unquoted, lower-cased.  0,
 *	-EINVAL or -ENAMETOOLONG.
 *
 *	aliases_expand() expands one key.  It returns 0 when the key is no
 *	alias (out untouched), 1 when it is: out->rcpt holds, deduplicated,
 *	the local mailboxes (addr_mailbox_name() form) and the addresses to
 *	relay; out->refused the targets refused ("FILE:LINE: |cmd: why",
 *	commands, files, local names that are no valid mailbox); out->trace a
 *	short "root -> ops@example.org, admin" for the log.  A name met again
 *	on its own expansion path is a local mailbox, as sendmail does
 *	("alice: alice, alice@remote" keeps a copy in alice's mailbox; a loop
 *	a -> b -> a ends in a's mailbox).  Errors (out freed):
 *	    -E2BIG  more than ctx->max_rcpt results (452 4.5.3), or more than
 *	            ALIASES_MAX_VISITS names looked at
 *	    -ELOOP  nesting deeper than ALIASES_MAX_DEPTH (554 5.4.6)
 *	    -ENOMEM
 *
 *	A source keeps a file loaded and reloads it when it changes:
 *	aliases_source_new() loads it (or fails, with err as above);
 *	aliases_source_get() returns the current table with a reference
 *	(aliases_release() it), after checking, at most once a second, the
 *	(device, inode, size, mtime) of the table, of each include, and of
 *	opts->stamp (spoolgate-newaliases's request file, may be NULL).  A
 *	change reloads; a table that does not load keeps the one before and
 *	logs event=aliases-reload-failed with the file:line; the next change
 *	tries again.
 *
 *	The configured table ([aliases] file, cfg.h), for the daemons:
 *	aliases_source_configured() makes the source of cfg's file (*out
 *	NULL when none is configured), with <spool>/ALIASES_STAMP_FILE as
 *	the request file and daemon_uid as the other owner allowed.
 *	aliases_cfg_is_local() is an is_local callback over cfg's
 *	local_domains (arg: the struct cfg).  aliases_expand_address() is
 *	what SMTP, outbox/ and the pickup of drops do with one recipient: 0
 *	when addr is no alias in a local domain, 1 with out filled (and
 *	logged: event=alias-expanded, one event=alias-target-refused warning
 *	per refused target with its file:line), or the -errno of
 *	aliases_expand() (logged as event=alias-failed).  id names the
 *	message or session in the log lines ("id=..." or "session=N").
 * OWNERSHIP
 *	A table from aliases_load() or aliases_source_get() is a reference
 *	the caller drops with aliases_release(); a source owns its current
 *	table.  An expansion's strings are the caller's until
 *	alias_expansion_free().  Nothing keeps a pointer to its arguments,
 *	but a source copies its path and stamp.
 * THREADS
 *	A table is immutable: any thread may expand with it.  A source may be
 *	shared by threads (a mutex inside).
 */
#ifndef SPOOLGATE_ALIASES_H
#define SPOOLGATE_ALIASES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ALIASES_LINE_MAX	4096
#define ALIASES_ENTRY_MAX	(64u << 10)
#define ALIASES_FILE_MAX	(4u << 20)
#define ALIASES_INCLUDE_MAX	(1u << 20)
#define ALIASES_INCLUDE_DEPTH	4
#define ALIASES_MAX_ENTRIES	50000
#define ALIASES_MAX_TARGETS	1000
#define ALIASES_MAX_DEPTH	16
#define ALIASES_MAX_VISITS	4096
#define ALIASES_NAME_MAX	64
#define ALIASES_STAMP_FILE	"newaliases"	/* <spool>/newaliases: spoolgate-newaliases's request */

struct aliases;
struct aliases_source;

struct aliases_opts {
	uid_t		daemon_uid;	/* may own the files besides root; (uid_t)-1: root only */
	const char     *stamp;		/* a file whose change means "reload"; NULL: none */
};

/* What expansion needs to know of the configuration. */
struct aliases_ctx {
	bool	      (*is_local)(const char *domain, void *arg);	/* NULL: no domain is */
	void	       *arg;
	size_t		max_rcpt;	/* results allowed */
};

enum alias_dest { ALIAS_MAILBOX, ALIAS_ADDRESS };

struct alias_rcpt {
	enum alias_dest	dest;
	char	       *value;		/* mailbox name, or local@domain */
};

struct alias_expansion {
	struct alias_rcpt *rcpt;
	size_t		nrcpt, cap;
	char	      **refused;	/* "FILE:LINE: target: why" */
	size_t		nrefused;
	char		trace[512];	/* "name -> a, b, ..." (cut with "...") */
};

int aliases_load(const char *path, const struct aliases_opts *opts, struct aliases **out,
		char *err, size_t errlen);
void aliases_release(struct aliases *a);
size_t aliases_count(const struct aliases *a);
const char *aliases_name_at(const struct aliases *a, size_t i);
int aliases_refused_at(const struct aliases *a, size_t i, char *out, size_t outlen);
int aliases_key(const char *addr, char *key, size_t keylen);
int aliases_expand(const struct aliases *a, const char *key, const struct aliases_ctx *ctx,
		struct alias_expansion *out);
void alias_expansion_free(struct alias_expansion *x);

struct aliases_source *aliases_source_new(const char *path, const struct aliases_opts *opts,
		char *err, size_t errlen);
struct aliases *aliases_source_get(struct aliases_source *src);
void aliases_source_free(struct aliases_source *src);

struct cfg;
int aliases_source_configured(const struct cfg *cfg, uid_t daemon_uid, struct aliases_source **out,
		char *err, size_t errlen);
bool aliases_cfg_is_local(const char *domain, void *cfg);
int aliases_expand_address(struct aliases_source *src, const struct cfg *cfg, const char *addr,
		size_t max_rcpt, const char *id, struct alias_expansion *out);

#endif
