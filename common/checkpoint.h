/*
 * NAME
 *	checkpoint - partial transfers kept for CHECKPOINT/TRANSID (RFC 1845)
 * SYNOPSIS
 *	#include "checkpoint.h"
 *
 *	void ckpt_key(const char *client, const char *transid, char key[CKPT_KEY_LEN + 1]);
 *	void ckpt_envelope_hash(const char *from, const char *const *rcpts, size_t n,
 *			char hex[CKPT_KEY_LEN + 1]);
 *	int ckpt_load(int dirfd, const char *key, struct ckpt_meta *m);
 *	int ckpt_save(int dirfd, const char *key, const struct ckpt_meta *m);
 *	int ckpt_remove(int dirfd, const char *key);
 *	int ckpt_sweep(int dirfd, long long now, unsigned lifetime);
 *	int ckpt_meta_parse(const char *buf, size_t len, struct ckpt_meta *m);
 *	int ckpt_meta_format(const struct ckpt_meta *m, char *buf, size_t size);
 * DESCRIPTION
 *	A client that says MAIL FROM:<...> TRANSID=<id@host> may lose its
 *	connection in the middle of DATA and, in a new session, send the same
 *	MAIL (same TRANSID), the same RCPTs and DATA: the server answers
 *	"355 <offset> is the transaction offset" and the client sends the rest
 *	of its DATA stream from that octet on.  What was received is kept in
 *	the spool directory partial/ (spool.h SPOOL_DIR_PARTIAL), two files
 *	per transfer, named by the key:
 *
 *	    partial/<key>.meta      what the transfer is, text (below)
 *	    partial/<key>.<id>      a second name of the message's temporary
 *
 *	The key is the SHA-256 (hex) of the client's identity ("user <name>"
 *	for an authenticated client, else "ip <address>") and the TRANSID, so a
 *	TRANSID given by another client finds nothing and starts a new
 *	transfer.  The record:
 *
 *	    spoolgate-partial: 1
 *	    transid: <1234@client.example>
 *	    client: ip 127.0.0.1
 *	    envelope: <sha256 hex of from, rcpts>
 *	    data: 1764442059.M123456P4242Q7.host
 *	    data-start: 212
 *	    data-length: 1048576
 *	    offset: 1050000
 *
 *	data names the file beside it; data-start is where the message (the
 *	client's bytes, as stored) starts in it, after our Return-Path: and
 *	Received:, and data-length how much of it was synced; offset is the
 *	octet of the DATA stream (what the client sent after the DATA line,
 *	dot-stuffed, CRLF) that follows.  A checkpoint is taken at a line end
 *	in the body, so the DATA decoder restarts at a line start.
 *
 *	The TRANSID is checked by smtp_parse_transid() (smtp_parse.h).
 *	ckpt_key() and
 *	ckpt_envelope_hash() make the hex digests.  ckpt_save() writes the
 *	record to a temporary, fsyncs it, renames it to <key>.meta and
 *	fsyncs the directory: the record names only synced data.
 *	ckpt_load() reads it (-ENOENT when there is none, -EBADMSG when it
 *	is not a record).  ckpt_remove() unlinks the record and its data.
 *	ckpt_sweep() removes the transfers whose record is older than
 *	lifetime seconds (by mtime; each checkpoint renews it), and data files
 *	and temporaries with no record that are as old; it returns how many
 *	transfers it removed.
 * ERRORS
 *	0 or -errno.
 * THREADS
 *	Thread-safe for distinct keys; nothing is cached.
 */
#ifndef SPOOLGATE_CHECKPOINT_H
#define SPOOLGATE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "smtp_parse.h"

#define CKPT_KEY_LEN		64	/* SHA-256 in hex */
#define CKPT_CLIENT_MAX		320	/* "user <name>" or "ip <address>" */
#define CKPT_DATA_MAX		256	/* a file name */

struct ckpt_meta {
	char		transid[SMTP_TRANSID_MAX];
	char		client[CKPT_CLIENT_MAX];
	char		envelope[CKPT_KEY_LEN + 1];
	char		data[CKPT_DATA_MAX];
	uint64_t	data_start;
	uint64_t	data_length;
	uint64_t	offset;
};

void ckpt_key(const char *client, const char *transid, char key[CKPT_KEY_LEN + 1]);
void ckpt_envelope_hash(const char *from, const char *const *rcpts, size_t n, char hex[CKPT_KEY_LEN + 1]);
int ckpt_load(int dirfd, const char *key, struct ckpt_meta *m);
int ckpt_save(int dirfd, const char *key, const struct ckpt_meta *m);
int ckpt_remove(int dirfd, const char *key);
int ckpt_sweep(int dirfd, long long now, unsigned lifetime);
int ckpt_meta_parse(const char *buf, size_t len, struct ckpt_meta *m);
int ckpt_meta_format(const struct ckpt_meta *m, char *buf, size_t size);

#endif
