/*
 * NAME
 *	submit - one message of spoolgate-sendmail, from its first byte to a drop
 * SYNOPSIS
 *	#include "submit.h"
 *
 *	int submit_begin(const struct submitter *who, const struct drop_record *rec,
 *			struct submit_msg *m);
 *	int submit_write(struct submit_msg *m, const char *buf, size_t len);
 *	int submit_end(const struct submitter *who, const struct drop_record *rec,
 *			struct submit_msg *m, char *why, size_t whylen);
 *	void submit_abort(const struct submitter *who, struct submit_msg *m);
 *	int submit_exit_code(int err);
 *	void submit_print_refusal(FILE *fp, const char *prog, int err, const char *why);
 * DESCRIPTION
 *	Both modes of spoolgate-sendmail (-bm reading standard input, -bs
 *	speaking SMTP on it) make drops the same way.  submit_begin() creates
 *	".<name>" in drop/ (drop_create()) and writes the drop record of rec;
 *	submit_write() appends message bytes through a buffer, and fails with
 *	-EFBIG (sticky) once more than [smtpd] max_message_size came;
 *	submit_end() runs the checks of an outbox/ submission on what was
 *	written (outbox_check() under drop_policy(): the very code the gateway
 *	runs again) and, when they pass, makes the drop durable and visible
 *	(drop_commit()).  On a refusal nothing stays in drop/ and why says
 *	what was wrong.  submit_abort() removes an unfinished drop.
 *
 *	submit_exit_code() maps an errno to the sysexits.h status Postfix's
 *	sendmail uses for it: no recipient EX_USAGE, a bad address
 *	EX_NOUSER, a message that is not one or too big EX_DATAERR, a drop
 *	that cannot be created EX_CANTCREAT, everything temporary
 *	EX_TEMPFAIL.  submit_print_refusal() prints "<prog>: <code> <x.y.z>
 *	<text>: <why>" with the reply of the error table (errmap.h).
 * OWNERSHIP
 *	struct submit_msg owns its descriptor and buffer until submit_end()
 *	or submit_abort().  who is borrowed.
 */
#ifndef SPOOLGATE_SUBMIT_H
#define SPOOLGATE_SUBMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../common/cfg.h"
#include "../common/drop.h"

#define SUBMIT_BUF	(64u << 10)

/* Who submits, and where to. */
struct submitter {
	const struct cfg       *cfg;
	int			dirfd;		/* drop/, O_PATH */
	uid_t			uid;
	const char	       *login;
	const char	       *own;		/* login@sender_domain */
	bool			verbose;
};

struct submit_msg {
	int		fd;
	char		name[DROP_NAME_MAX];
	char		tmp[DROP_NAME_MAX];
	off_t		start;		/* the message's first byte in the drop */
	uint64_t	size;		/* message bytes so far */
	int		err;		/* sticky */
	char	       *buf;
	size_t		used;
};

int submit_begin(const struct submitter *who, const struct drop_record *rec, struct submit_msg *m);
int submit_write(struct submit_msg *m, const char *buf, size_t len);
int submit_end(const struct submitter *who, const struct drop_record *rec, struct submit_msg *m,
		char *why, size_t whylen);
void submit_abort(const struct submitter *who, struct submit_msg *m);
int submit_exit_code(int err);
void submit_print_refusal(FILE *fp, const char *prog, int err, const char *why);

#endif
