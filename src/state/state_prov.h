/*
 * state_prov.h - the provision stage's objects in the state DB (schema 008:
 * provision_objects, provision_events).
 *
 * One row per (stage, kind, name): planned 'pending', 'creating' while a
 * create is in flight (recorded and committed BEFORE the create is sent, so
 * that after a crash the object found on the target is known to be ours),
 * then 'done' with an outcome, or 'failed' with the reason and one more
 * attempt counted.  Every change commits one transaction with its event
 * and is a crashpoint() (testhooks.h).
 *
 * Thread rule as in state.h (one thread at a time per struct state); the
 * provision stage calls these from its main thread only.  Strings passed
 * in are copied; rows returned own their strings (state_prov_release).
 * Event and error texts must never hold a secret: the callers pass
 * attribute names and values of the allow list, which has no password.
 */
#ifndef ZMB_STATE_PROV_H
#define ZMB_STATE_PROV_H

#include "state.h"

struct prov_row {
	int64_t id;
	char *kind;        /* "account", "cos", "domain", "list", "resource" (schema 011) */
	char *name;        /* source name */
	char *target;      /* target name */
	char *state;       /* "pending", "creating", "done", "failed" */
	char *outcome;     /* "created", "updated", "unchanged", "skipped"; NULL */
	bool ours;         /* created by this job */
	int attempts;
	char *last_error;
	char *target_id;   /* the target's zimbraId when not the source's ("?": not known yet) */
};
void state_prov_release(struct prov_row *r);   /* NULL-safe; frees the strings */

/*
 * Plan: insert (pending) or refresh the target name of an object not yet
 * done.  Call inside state_begin()/state_commit() for many at once.
 */
enum zmb_rc state_prov_plan(struct state *st, const char *stage, const char *kind,
			    const char *name, const char *target);
/* The row of an object; ZMB_ENOTFOUND when unplanned. */
enum zmb_rc state_prov_get(struct state *st, const char *stage, const char *kind,
			   const char *name, struct prov_row *out);
/* A create is about to be sent: state 'creating', ours = 1, with event. */
enum zmb_rc state_prov_creating(struct state *st, int64_t run_id, int64_t id, const char *event);
/* The target's own zimbraId for the object (schema 010), with a warning event. */
enum zmb_rc state_prov_target_id(struct state *st, int64_t run_id, int64_t id,
				 const char *target_id, const char *event);
/* Done with outcome ("created", ...), last_error cleared, with event (may be NULL). */
enum zmb_rc state_prov_done(struct state *st, int64_t run_id, int64_t id, const char *outcome,
			    const char *event);
/* Failed: attempts + 1, last_error = error (the event says the same). */
enum zmb_rc state_prov_failed(struct state *st, int64_t run_id, int64_t id, const char *error);
/* An event about the object alone (e.g. the diff of an update, before it is sent). */
enum zmb_rc state_prov_event(struct state *st, int64_t run_id, int64_t id, const char *level,
			     const char *msg);

#endif
