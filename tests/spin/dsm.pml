/*
 * SPIN model of the DSM coherence protocol (dsm/protocol.c).
 *
 * 3 nodes, 2 pages (first home of page p: node p % 3), home migration.
 * Every engine function has an inline of the same name below and follows
 * the C code statement by statement; docs/protocol.md is the prose version.
 *
 * What is modelled
 *   - per node and page: local state, pending request (+ want_write, req id),
 *     is_home, home_hint (forwarding pointer), and at the home the directory
 *     (dir, owner, copyset, unflushed), the transaction (txn, cur, acks),
 *     migrate_to and the FIFO request queue;
 *   - the page table the engine's actions drive (present / writable / value),
 *     as the simulator keeps it: INSTALL, PROTECT, DROP, MAP_LOCAL, WAKE;
 *   - one channel per ordered pair of nodes, FIFO, carrying
 *     {kind, page, flags, req, value, migrate-info};
 *   - one CPU thread per node that reads or writes either page through the
 *     page table and faults into the engine when the mapping refuses;
 *   - bounded nondeterminism: MAXW writes in all (values 1..MAXW), MAXMIG
 *     home moves decided by the current home, MAXSTALE stale faults (a fault
 *     with no thread behind it, as userfaultfd may deliver).
 * Not modelled: peer failure (LOST, -EHOSTDOWN, F_ERROR grants), counters.
 *
 * Abstractions (none changes a decision of the engine)
 *   - req_id is kept modulo 2 (a node has at most one request per page in
 *     flight, so a GRANT for anything but the current or the previous
 *     request cannot exist; the parity still catches a duplicated grant);
 *   - fields the engine never reads in the current state are reset to 0
 *     (owner unless REMOTE_EXCL, directory fields at a non-home, cur and
 *     acks with no transaction, the bytes of a dropped page): see canon();
 *   - a read that hits the mapping is not a separate step (it would change
 *     nothing); check() asserts in every state that every mapped copy holds
 *     the last value written, which is what such a read returns.
 *
 * Checked
 *   - after every step (check()): at most one MODIFIED copy per page, no
 *     SHARED copy next to a MODIFIED one, every valid copy == last_written,
 *     the page table agrees with the local state, at most one home;
 *   - every read that completes returns last_written[page];
 *   - the engine never hits one of its protocol_errors paths (proto_error);
 *   - channels and queues never overflow, forwarding never exceeds MAXMIG hops;
 *   - when nothing can move any more (timeout), the system must be quiet:
 *     no message in flight, no thread blocked, no request pending, every
 *     directory idle and exact, one home per page (quiescence()).
 *
 * -DNO_FLUSH: the old home migrates without the FLUSH round (mutation that
 * must be caught, see docs/protocol.md).
 */

#define NN 3  /* nodes */
#ifndef NPG
#define NPG 2 /* pages */
#endif
#ifndef MAXW
#define MAXW 3
#endif
#ifndef MAXMIG
#define MAXMIG 2
#endif
#ifndef MAXSTALE
#define MAXSTALE 1
#endif
#ifndef CAP
#define CAP 4
#endif
#define QCAP NN
#define HOPMAX MAXMIG

/* enum dsm_local_state */
#define LOC_INV 0
#define LOC_SH 1
#define LOC_MOD 2
/* enum dsm_dir_state (LOST not modelled) */
#define DIR_HX 0
#define DIR_SH 1
#define DIR_RX 2
/* enum txn_kind */
#define TXN_NONE 0
#define TXN_INV 1
#define TXN_FS 2
#define TXN_FE 3
#define TXN_FLUSH 4
/* enum pending_kind */
#define PEND_NONE 0
#define PEND_R 1
#define PEND_W 2
/* DSM_MSG_F_* */
#define F_DATA 1
#define F_EXCL 2
/* enum dsm_data_source */
#define D_NONE 0
#define D_LOCAL 1
#define D_INCOMING 2
/* migrate_to == -1 */
#define NOMIG 3
/* thread states */
#define T_IDLE 0
#define T_BLOCKED 1
#define T_WOKEN 2

mtype = { READ_REQ, WRITE_REQ, GRANT, INV, INV_ACK, FETCH, FETCH_REPLY, MIGRATE, FLUSH, FLUSH_ACK };

#define I(n, p) ((n) * NPG + (p))
#define BIT(n) (1 << (n))
/* channel src -> dst */
#define CH(s, d) ((s) * (NN - 1) + ((d) > (s) -> (d) - 1 : (d)))

/* struct dsm_req / the requester fields of a message, packed in a byte:
 * requester (2 bits), is_write (1, queue entries only), req_id parity (1), hops */
#define REQ(n, w, id, hops) ((n) | ((w) << 2) | ((id) << 3) | ((hops) << 4))
#define RQ_N(r) ((r) & 3)
#define RQ_W(r) (((r) >> 2) & 1)
#define RQ_ID(r) (((r) >> 3) & 1)
#define RQ_HOPS(r) ((r) >> 4)
/* what a GRANT echoes: requester and req_id */
#define GREQ(r) REQ(RQ_N(r), 0, RQ_ID(r), 0)
/* MIGRATE: dir_state, copyset, owner */
#define MX(d, cs, o) ((d) | ((cs) << 2) | ((o) << 5))
#define MX_DIR(x) ((x) & 3)
#define MX_CS(x) (((x) >> 2) & 7)
#define MX_OWN(x) (((x) >> 5) & 3)

/* message: kind, page, flags, req, value (the page data), migrate info */
chan ch[NN * (NN - 1)] = [CAP] of { mtype, byte, byte, byte, byte, byte };

/* ---- per node and page (index I(n,p)) ---- */
byte lst[NN * NPG];   /* LOC_* */
byte pend[NN * NPG];    /* PEND_*: our own request in flight */
bit wantw[NN * NPG];    /* a write fault came while a read was pending */
bit ishome[NN * NPG];
byte hint[NN * NPG];    /* home_hint; forwarding pointer of a former home */
bit rid[NN * NPG];      /* req_id of our pending request, modulo 2 */
byte dir[NN * NPG];     /* DIR_* (home only) */
byte txn[NN * NPG];     /* TXN_* (home only) */
byte owner[NN * NPG];
byte acks[NN * NPG];    /* acks_needed */
byte migto[NN * NPG];   /* migrate_to, NOMIG = -1 */
byte copyset[NN * NPG];
byte unfl[NN * NPG];    /* unflushed */
byte cur[NN * NPG];     /* the request of the transaction in progress */
byte qlen[NN * NPG];
byte q[NN * NPG * QCAP];
/* page table */
bit present[NN * NPG];
bit writable[NN * NPG];
byte value[NN * NPG];
/* one CPU thread per node */
byte tst[NN];
byte tpg[NN];
bit tw[NN];
/* bounds and the reference value */
byte lastw[NPG];
byte wstarted; /* writes begun (<= MAXW) */
byte wcount;   /* writes done: the last value written */
byte migs;     /* home moves decided */
byte stale;    /* stale faults injected */

/* scratch: not part of the state vector (every step is one d_step) */
hidden byte mk, mp, mf, mr, mv, mx; /* the message being handled */
hidden byte rc, r1, r2, rf;         /* requests (distinct names per nesting level) */
hidden byte others, hadcopy, again, restart, selflike, to, flush, k, kf, gfl, gval;
hidden byte ci, cn, cp, cnt1, cnt2, cnt3;

/* ---- actions (struct dsm_action) on the page table ---- */

inline proto_error()
{
	/* e->c.protocol_errors++: the simulator fails on any */
	assert(false)
}

inline send(sndFrom, sndTo, sndKind, sndPage, sndFlags, sndReq, sndVal, sndMx)
{
	assert(sndFrom != sndTo && sndTo < NN);
	assert(len(ch[CH(sndFrom, sndTo)]) < CAP);
	ch[CH(sndFrom, sndTo)]!sndKind, sndPage, sndFlags, sndReq, sndVal, sndMx
}

inline act_install(n, p, w, val)
{
	assert(mf & F_DATA); /* INSTALL takes the incoming payload */
	present[I(n, p)] = 1;
	writable[I(n, p)] = w;
	value[I(n, p)] = val
}

inline act_protect(n, p, w)
{
	assert(present[I(n, p)]);
	writable[I(n, p)] = w
}

inline act_drop(n, p)
{
	present[I(n, p)] = 0;
	writable[I(n, p)] = 0;
	value[I(n, p)] = 0
}

inline act_map_local(n, p, w)
{
	assert(present[I(n, p)]);
	writable[I(n, p)] = w
}

inline wake(n, p)
{
	if
	:: tst[n] == T_BLOCKED && tpg[n] == p -> tst[n] = T_WOKEN
	:: else -> skip
	fi
}

/* ---- the request queue ---- */

inline enqueue(n, p, r)
{
	assert(qlen[I(n, p)] < QCAP);
	q[I(n, p) * QCAP + qlen[I(n, p)]] = r;
	qlen[I(n, p)]++
}

inline dequeue(n, p, r)
{
	r = q[I(n, p) * QCAP];
	q[I(n, p) * QCAP] = q[I(n, p) * QCAP + 1];
	q[I(n, p) * QCAP + 1] = q[I(n, p) * QCAP + 2];
	q[I(n, p) * QCAP + 2] = 0;
	qlen[I(n, p)]--
}

/* ---- requester side ---- */

/*
 * finish_own_request(). In C it ends with start_request(page, true) when a
 * write fault came while the read was pending (`again`); here that tail call
 * is deferred to the end of the step (do_restart), because Promela inlines
 * cannot recurse. This changes no outcome: nothing between the two points
 * reads the node's own pending state, and the restarted write either joins
 * the tail of the home's queue or is served on an idle directory, exactly
 * as in C (see the note at do_restart). At most one restart per step.
 */
inline finish_own_request(n, p)
{
	again = wantw[I(n, p)] && lst[I(n, p)] != LOC_MOD;
	assert(!(again && restart));
	restart = restart || again;
	pend[I(n, p)] = PEND_NONE;
	wantw[I(n, p)] = 0;
	wake(n, p)
}

/* ---- home side ---- */

#define HOME_BUSY(n, p) (txn[I(n, p)] != TXN_NONE || migto[I(n, p)] != NOMIG || qlen[I(n, p)] > 0)

inline send_grant(n, p, r, excl, dsrc)
{
	unfl[I(n, p)] = unfl[I(n, p)] | BIT(RQ_N(r));
	gfl = (excl -> F_EXCL : 0);
	gval = 0;
	if
	:: dsrc == D_LOCAL ->
		assert(present[I(n, p)]);
		gfl = gfl | F_DATA;
		gval = value[I(n, p)]
	:: dsrc == D_INCOMING ->
		assert(mf & F_DATA);
		gfl = gfl | F_DATA;
		gval = mv
	:: else -> skip
	fi;
	send(n, RQ_N(r), GRANT, p, gfl, GREQ(r), gval, 0)
}

inline home_take_exclusive(n, p)
{
	dir[I(n, p)] = DIR_HX;
	copyset[I(n, p)] = 0;
	lst[I(n, p)] = LOC_MOD;
	act_protect(n, p, 1)
}

/* all other copies are gone; the home's copy is valid: grant r */
inline finish_write(n, p, r)
{
	hadcopy = (copyset[I(n, p)] & BIT(RQ_N(r))) != 0;
	if
	:: RQ_N(r) == n ->
		home_take_exclusive(n, p);
		finish_own_request(n, p)
	:: else ->
		send_grant(n, p, r, 1, (hadcopy -> D_NONE : D_LOCAL));
		act_drop(n, p);
		lst[I(n, p)] = LOC_INV;
		dir[I(n, p)] = DIR_RX;
		owner[I(n, p)] = RQ_N(r);
		copyset[I(n, p)] = 0
	fi
}

inline begin_fetch(n, p, r, excl)
{
	cur[I(n, p)] = r;
	txn[I(n, p)] = (excl -> TXN_FE : TXN_FS);
	send(n, owner[I(n, p)], FETCH, p, (excl -> F_EXCL : 0), 0, 0, 0)
}

inline serve_read(n, p, r)
{
	if
	:: dir[I(n, p)] == DIR_HX && RQ_N(r) != n ->
		act_protect(n, p, 0);
		lst[I(n, p)] = LOC_SH;
		dir[I(n, p)] = DIR_SH;
		copyset[I(n, p)] = BIT(RQ_N(r));
		send_grant(n, p, r, 0, D_LOCAL)
	:: dir[I(n, p)] == DIR_SH && RQ_N(r) != n ->
		copyset[I(n, p)] = copyset[I(n, p)] | BIT(RQ_N(r));
		send_grant(n, p, r, 0, D_LOCAL)
	:: (dir[I(n, p)] == DIR_HX || dir[I(n, p)] == DIR_SH) && RQ_N(r) == n ->
		finish_own_request(n, p) /* the home's own read: its copy allows it */
	:: dir[I(n, p)] == DIR_RX ->
		if
		:: owner[I(n, p)] == RQ_N(r) -> proto_error() /* the owner cannot miss */
		:: else -> begin_fetch(n, p, r, 0)
		fi
	fi
}

inline serve_write(n, p, r)
{
	if
	:: dir[I(n, p)] == DIR_HX && RQ_N(r) == n ->
		finish_own_request(n, p)
	:: dir[I(n, p)] == DIR_HX && RQ_N(r) != n ->
		/* stop local writers, send the bytes, then drop our copy */
		act_protect(n, p, 0);
		finish_write(n, p, r)
	:: dir[I(n, p)] == DIR_SH ->
		others = copyset[I(n, p)] & ~BIT(RQ_N(r));
		if
		:: others == 0 -> finish_write(n, p, r)
		:: else ->
			cur[I(n, p)] = r;
			txn[I(n, p)] = TXN_INV;
			acks[I(n, p)] = 0;
			k = 0;
			do
			:: k < NN ->
				if
				:: others & BIT(k) ->
					acks[I(n, p)]++;
					send(n, k, INV, p, 0, 0, 0, 0)
				:: else -> skip
				fi;
				k++
			:: else -> break
			od
		fi
	:: dir[I(n, p)] == DIR_RX ->
		if
		:: owner[I(n, p)] == RQ_N(r) -> proto_error()
		:: else -> begin_fetch(n, p, r, 1)
		fi
	fi
}

inline home_serve(n, p, r)
{
	if
	:: RQ_W(r) -> serve_write(n, p, r)
	:: else -> serve_read(n, p, r)
	fi
}

inline home_request(n, p, r)
{
	if
	:: HOME_BUSY(n, p) -> enqueue(n, p, r)
	:: else -> home_serve(n, p, r)
	fi
}

inline start_request(n, p, w)
{
	pend[I(n, p)] = (w -> PEND_W : PEND_R);
	rid[I(n, p)] = 1 - rid[I(n, p)];
	if
	:: ishome[I(n, p)] ->
		r1 = REQ(n, w, rid[I(n, p)], 0);
		home_request(n, p, r1)
	:: else ->
		send(n, hint[I(n, p)], (w -> WRITE_REQ : READ_REQ), p, 0, REQ(n, 0, rid[I(n, p)], 0), 0, 0)
	fi
}

/*
 * The deferred tail of finish_own_request(): start_request(page, true).
 * In C it runs inside the caller; when that caller is drain_queue() the
 * queue is either empty (then the write is served at once, here too, as
 * the directory is still idle) or not (then the write is appended to its
 * tail, here too, behind whatever the drain left). Its own serve_write can
 * only finish at once or start a transaction, never restart again.
 */
inline do_restart(n, p)
{
	if
	:: restart ->
		restart = 0;
		pend[I(n, p)] = PEND_W;
		rid[I(n, p)] = 1 - rid[I(n, p)];
		if
		:: ishome[I(n, p)] ->
			r2 = REQ(n, 1, rid[I(n, p)], 0);
			if
			:: HOME_BUSY(n, p) -> enqueue(n, p, r2)
			:: else -> serve_write(n, p, r2)
			fi
		:: else ->
			send(n, hint[I(n, p)], WRITE_REQ, p, 0, REQ(n, 0, rid[I(n, p)], 0), 0, 0)
		fi;
		assert(!restart)
	:: else -> skip
	fi
}

#define PERMITS(n, p, w) ((w) -> lst[I(n, p)] == LOC_MOD : lst[I(n, p)] != LOC_INV)

inline local_fault(n, p, w)
{
	if
	:: PERMITS(n, p, w) ->
		/* already served: just map it and let the thread go */
		act_map_local(n, p, lst[I(n, p)] == LOC_MOD);
		wake(n, p)
	:: !PERMITS(n, p, w) && pend[I(n, p)] != PEND_NONE ->
		if
		:: w && pend[I(n, p)] == PEND_R -> wantw[I(n, p)] = 1
		:: else -> skip
		fi
	:: !PERMITS(n, p, w) && pend[I(n, p)] == PEND_NONE ->
		start_request(n, p, w)
	fi
}

inline on_grant(n, p, s)
{
	if
	:: pend[I(n, p)] == PEND_NONE || RQ_ID(mr) != rid[I(n, p)] || RQ_N(mr) != n ->
		proto_error()
	:: else -> skip
	fi;
	hint[I(n, p)] = s;
	if
	:: mf & F_EXCL ->
		if
		:: mf & F_DATA -> act_install(n, p, 1, mv)
		:: !(mf & F_DATA) && lst[I(n, p)] == LOC_SH -> act_protect(n, p, 1)
		:: else -> proto_error() /* an upgrade without a copy to upgrade */
		fi;
		lst[I(n, p)] = LOC_MOD
	:: else ->
		if
		:: !(mf & F_DATA) -> proto_error()
		:: else -> skip
		fi;
		act_install(n, p, 0, mv);
		lst[I(n, p)] = LOC_SH
	fi;
	finish_own_request(n, p)
}

inline on_inv(n, p, s)
{
	if
	:: ishome[I(n, p)] || lst[I(n, p)] != LOC_SH -> proto_error()
	:: else -> skip
	fi;
	act_drop(n, p);
	lst[I(n, p)] = LOC_INV;
	hint[I(n, p)] = s;
	send(n, s, INV_ACK, p, 0, 0, 0, 0)
}

inline on_fetch(n, p, s)
{
	if
	:: ishome[I(n, p)] || lst[I(n, p)] != LOC_MOD -> proto_error()
	:: else -> skip
	fi;
	/* stop local writers before the bytes are read for sending */
	act_protect(n, p, 0);
	send(n, s, FETCH_REPLY, p, F_DATA, 0, value[I(n, p)], 0);
	if
	:: mf & F_EXCL ->
		act_drop(n, p);
		lst[I(n, p)] = LOC_INV
	:: else ->
		lst[I(n, p)] = LOC_SH
	fi;
	hint[I(n, p)] = s
}

inline on_flush(n, p, s)
{
	/* FIFO did the work: every GRANT the sender sent before this is in */
	send(n, s, FLUSH_ACK, p, 0, 0, 0, 0)
}

/* ---- home migration ---- */

inline forward_queue(n, p, t)
{
	do
	:: qlen[I(n, p)] > 0 ->
		dequeue(n, p, rf);
		assert(RQ_HOPS(rf) + 1 <= HOPMAX);
		send(n, t, (RQ_W(rf) -> WRITE_REQ : READ_REQ), p, 0,
		     REQ(RQ_N(rf), 0, RQ_ID(rf), RQ_HOPS(rf) + 1), 0, 0)
	:: else -> break
	od
}

inline do_migrate(n, p)
{
	to = migto[I(n, p)];
	if
	:: dir[I(n, p)] == DIR_HX ->
		act_protect(n, p, 0);
		send(n, to, MIGRATE, p, F_DATA, 0, value[I(n, p)], MX(DIR_HX, copyset[I(n, p)], owner[I(n, p)]))
	:: dir[I(n, p)] == DIR_SH && !(copyset[I(n, p)] & BIT(to)) ->
		assert(present[I(n, p)]);
		send(n, to, MIGRATE, p, F_DATA, 0, value[I(n, p)], MX(DIR_SH, copyset[I(n, p)], owner[I(n, p)]))
	:: else ->
		send(n, to, MIGRATE, p, 0, 0, 0, MX(dir[I(n, p)], copyset[I(n, p)], owner[I(n, p)]))
	fi;
	if
	:: lst[I(n, p)] != LOC_INV -> act_drop(n, p)
	:: else -> skip
	fi;
	lst[I(n, p)] = LOC_INV;
	ishome[I(n, p)] = 0;
	hint[I(n, p)] = to;
	migto[I(n, p)] = NOMIG;
	copyset[I(n, p)] = 0;
	unfl[I(n, p)] = 0;
	forward_queue(n, p, to)
}

inline drain_queue(n, p)
{
	/* stop when a transaction starts, a home move begins, or the page left */
	do
	:: ishome[I(n, p)] && txn[I(n, p)] == TXN_NONE && migto[I(n, p)] == NOMIG && qlen[I(n, p)] > 0 ->
		dequeue(n, p, r1);
		home_serve(n, p, r1)
	:: else -> break
	od
}

inline after_transaction(n, p)
{
	if
	:: !ishome[I(n, p)] -> skip
	:: ishome[I(n, p)] && migto[I(n, p)] == NOMIG -> drain_queue(n, p)
	:: ishome[I(n, p)] && migto[I(n, p)] != NOMIG ->
#ifdef NO_FLUSH
		do_migrate(n, p)
#else
		flush = unfl[I(n, p)];
		if
		:: flush == 0 -> do_migrate(n, p)
		:: else ->
			txn[I(n, p)] = TXN_FLUSH;
			acks[I(n, p)] = 0;
			kf = 0;
			do
			:: kf < NN ->
				if
				:: flush & BIT(kf) ->
					acks[I(n, p)]++;
					send(n, kf, FLUSH, p, 0, 0, 0, 0)
				:: else -> skip
				fi;
				kf++
			:: else -> break
			od
		fi
#endif
	fi
}

inline on_request(n, p, s)
{
	if
	:: ishome[I(n, p)] ->
		rc = REQ(RQ_N(mr), mk == WRITE_REQ, RQ_ID(mr), RQ_HOPS(mr));
		home_request(n, p, rc)
	:: else ->
		/* not (or no longer) the home: pass it along the forwarding pointer */
		assert(RQ_HOPS(mr) + 1 <= HOPMAX);
		send(n, hint[I(n, p)], mk, p, mf, REQ(RQ_N(mr), 0, RQ_ID(mr), RQ_HOPS(mr) + 1), 0, 0)
	fi
}

inline on_inv_ack(n, p, s)
{
	if
	:: !ishome[I(n, p)] || txn[I(n, p)] != TXN_INV || !(copyset[I(n, p)] & BIT(s)) ||
	   acks[I(n, p)] == 0 -> proto_error()
	:: else -> skip
	fi;
	copyset[I(n, p)] = copyset[I(n, p)] & ~BIT(s);
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(s);
	acks[I(n, p)]--;
	if
	:: acks[I(n, p)] == 0 ->
		rc = cur[I(n, p)];
		txn[I(n, p)] = TXN_NONE;
		finish_write(n, p, rc);
		after_transaction(n, p)
	:: else -> skip
	fi
}

inline on_fetch_reply(n, p, s)
{
	rc = cur[I(n, p)];
	if
	:: !ishome[I(n, p)] || (txn[I(n, p)] != TXN_FS && txn[I(n, p)] != TXN_FE) ||
	   s != owner[I(n, p)] || !(mf & F_DATA) -> proto_error()
	:: else -> skip
	fi;
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(s);
	selflike = RQ_N(rc) == n;
	if
	:: txn[I(n, p)] == TXN_FS ->
		act_install(n, p, 0, mv);
		lst[I(n, p)] = LOC_SH;
		dir[I(n, p)] = DIR_SH;
		copyset[I(n, p)] = BIT(s);
		txn[I(n, p)] = TXN_NONE;
		if
		:: !selflike ->
			copyset[I(n, p)] = copyset[I(n, p)] | BIT(RQ_N(rc));
			send_grant(n, p, rc, 0, D_LOCAL)
		:: else -> skip
		fi
	:: else ->
		txn[I(n, p)] = TXN_NONE;
		copyset[I(n, p)] = 0;
		if
		:: selflike ->
			act_install(n, p, 1, mv);
			lst[I(n, p)] = LOC_MOD;
			dir[I(n, p)] = DIR_HX
		:: else ->
			send_grant(n, p, rc, 1, D_INCOMING);
			dir[I(n, p)] = DIR_RX;
			owner[I(n, p)] = RQ_N(rc)
		fi
	fi;
	if
	:: RQ_N(rc) == n ->
		finish_own_request(n, p);
		do_restart(n, p) /* C: inside finish_own_request, before after_transaction */
	:: else -> skip
	fi;
	after_transaction(n, p)
}

inline on_flush_ack(n, p, s)
{
	if
	:: !ishome[I(n, p)] || txn[I(n, p)] != TXN_FLUSH || !(unfl[I(n, p)] & BIT(s)) -> proto_error()
	:: else -> skip
	fi;
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(s);
	acks[I(n, p)]--;
	if
	:: acks[I(n, p)] == 0 ->
		txn[I(n, p)] = TXN_NONE;
		after_transaction(n, p)
	:: else -> skip
	fi
}

/* dsm_engine_migrate_home(): the caller checked is_home and migrate_to < 0
 * (otherwise the engine returns -EINVAL / -EBUSY and nothing changes) */
inline migrate_home(n, p, t)
{
	migto[I(n, p)] = t;
	if
	:: txn[I(n, p)] == TXN_NONE -> after_transaction(n, p)
	:: else -> skip
	fi
}

inline on_migrate(n, p, s)
{
	if
	:: ishome[I(n, p)] -> proto_error()
	:: else -> skip
	fi;
	ishome[I(n, p)] = 1;
	hint[I(n, p)] = n;
	txn[I(n, p)] = TXN_NONE;
	migto[I(n, p)] = NOMIG;
	copyset[I(n, p)] = 0;
	unfl[I(n, p)] = 0;
	owner[I(n, p)] = MX_OWN(mx);
	dir[I(n, p)] = MX_DIR(mx);
	if
	:: MX_DIR(mx) == DIR_HX ->
		if
		:: mf & F_DATA -> act_install(n, p, 1, mv)
		:: else -> proto_error()
		fi;
		lst[I(n, p)] = LOC_MOD
	:: MX_DIR(mx) == DIR_SH ->
		others = MX_CS(mx) & ~BIT(n);
		if
		:: mf & F_DATA -> act_install(n, p, others == 0, mv)
		:: !(mf & F_DATA) && others == 0 -> act_protect(n, p, 1)
		:: else -> skip
		fi;
		if
		:: others != 0 ->
			copyset[I(n, p)] = others;
			lst[I(n, p)] = LOC_SH
		:: else ->
			dir[I(n, p)] = DIR_HX;
			lst[I(n, p)] = LOC_MOD
		fi
	:: MX_DIR(mx) == DIR_RX ->
		if
		:: MX_OWN(mx) == n -> dir[I(n, p)] = DIR_HX /* we are MODIFIED already */
		:: else -> skip
		fi
	:: else -> proto_error()
	fi;
	/* threads that waited for this page may find the new state enough */
	wake(n, p)
}

/* ---- the CPU thread ---- */

/* the access goes through the page table; a refused one faults */
inline access(n)
{
	if
	:: present[I(n, tpg[n])] && (!tw[n] || writable[I(n, tpg[n])]) ->
		if
		:: tw[n] ->
			wcount++;
			value[I(n, tpg[n])] = wcount;
			lastw[tpg[n]] = wcount
		:: else ->
			/* sequential consistency: a read returns the last write */
			assert(value[I(n, tpg[n])] == lastw[tpg[n]])
		fi;
		tst[n] = T_IDLE;
		tpg[n] = 0;
		tw[n] = 0
	:: else ->
		tst[n] = T_BLOCKED;
		local_fault(n, tpg[n], tw[n])
	fi
}

inline begin_access(n, p, w)
{
	tpg[n] = p;
	tw[n] = w;
	if
	:: w -> wstarted++
	:: else -> skip
	fi;
	access(n)
}

/* ---- invariants ---- */

/* zero the fields the engine does not read in the current state */
inline canon()
{
	ci = 0;
	do
	:: ci < NN * NPG ->
		if
		:: !ishome[ci] -> dir[ci] = 0; owner[ci] = 0
		:: else -> skip
		fi;
		if
		:: dir[ci] != DIR_RX -> owner[ci] = 0
		:: else -> skip
		fi;
		if
		:: txn[ci] == TXN_NONE -> cur[ci] = 0; acks[ci] = 0
		:: else -> skip
		fi;
		ci++
	:: else -> break
	od
}

inline check()
{
	cp = 0;
	do
	:: cp < NPG ->
		cnt1 = 0; /* MODIFIED */
		cnt2 = 0; /* SHARED */
		cnt3 = 0; /* homes */
		cn = 0;
		do
		:: cn < NN ->
			cnt1 = cnt1 + (lst[I(cn, cp)] == LOC_MOD);
			cnt2 = cnt2 + (lst[I(cn, cp)] == LOC_SH);
			cnt3 = cnt3 + ishome[I(cn, cp)];
			assert(lst[I(cn, cp)] != LOC_INV || !present[I(cn, cp)]);
			assert(lst[I(cn, cp)] != LOC_SH || !writable[I(cn, cp)]);
			assert(lst[I(cn, cp)] == LOC_INV || present[I(cn, cp)]);
			assert(lst[I(cn, cp)] == LOC_INV || value[I(cn, cp)] == lastw[cp]);
			cn++
		:: else -> break
		od;
		assert(cnt1 <= 1);                /* single writer */
		assert(cnt1 == 0 || cnt2 == 0);   /* no reader next to the writer */
		assert(cnt3 <= 1);                /* at most one home */
		cp++
	:: else -> break
	od
}

/* ---- processes ---- */

/* dsm_engine_receive(): one step per (channel, kind) at the channel's head,
 * so that every d_step stays within SPIN's size limit */
#define RECV(s, kind, handler) \
	d_step { ch[CH(s, me)]?kind, mp, mf, mr, mv, mx -> mk = kind; handler(me, mp, s); do_restart(me, mp); canon(); check(); skip }
#define RECV_ALL(s) \
	RECV(s, READ_REQ, on_request) \
	:: RECV(s, WRITE_REQ, on_request) \
	:: RECV(s, GRANT, on_grant) \
	:: RECV(s, INV, on_inv) \
	:: RECV(s, INV_ACK, on_inv_ack) \
	:: RECV(s, FETCH, on_fetch) \
	:: RECV(s, FETCH_REPLY, on_fetch_reply) \
	:: RECV(s, MIGRATE, on_migrate) \
	:: RECV(s, FLUSH, on_flush) \
	:: RECV(s, FLUSH_ACK, on_flush_ack)
#define READ(p) \
	d_step { tst[me] == T_IDLE && !present[I(me, p)] -> begin_access(me, p, 0); do_restart(me, p); canon(); check(); skip }
#define WRITE(p) \
	d_step { tst[me] == T_IDLE && wstarted < MAXW -> begin_access(me, p, 1); do_restart(me, p); canon(); check(); skip }
#define STALE(p, w) \
	d_step { stale < MAXSTALE -> stale++; local_fault(me, p, w); do_restart(me, p); canon(); check(); skip }
#define MIGRATE_TO(p, t) \
	d_step { migs < MAXMIG && ishome[I(me, p)] && migto[I(me, p)] == NOMIG -> \
		migs++; migrate_home(me, p, t); do_restart(me, p); canon(); check(); skip }

proctype node(byte me)
{
end_idle:
	do
	:: RECV_ALL((me + 1) % NN)
	:: RECV_ALL((me + 2) % NN)
	:: d_step { tst[me] == T_WOKEN -> cp = tpg[me]; access(me); do_restart(me, cp); canon(); check(); skip }
	:: READ(0)
	:: WRITE(0)
	:: STALE(0, 0)
	:: STALE(0, 1)
	:: MIGRATE_TO(0, (me + 1) % NN)
	:: MIGRATE_TO(0, (me + 2) % NN)
#if NPG > 1
	:: READ(1)
	:: WRITE(1)
	:: STALE(1, 0)
	:: STALE(1, 1)
	:: MIGRATE_TO(1, (me + 1) % NN)
	:: MIGRATE_TO(1, (me + 2) % NN)
#endif
	od
}

/* nothing can move any more: only a quiet system is a valid end */
inline quiet()
{
	ci = 0;
	do
	:: ci < NN * (NN - 1) -> assert(len(ch[ci]) == 0); ci++ /* no message in flight */
	:: else -> break
	od;
	cn = 0;
	do
	:: cn < NN -> assert(tst[cn] == T_IDLE); cn++ /* no thread waits forever */
	:: else -> break
	od;
	cp = 0;
	do
	:: cp < NPG ->
		cnt3 = 0;
		cn = 0;
		do
		:: cn < NN ->
			assert(pend[I(cn, cp)] == PEND_NONE); /* no request pending forever */
			if
			:: ishome[I(cn, cp)] ->
				cnt3++;
				/* the directory is idle ... */
				assert(txn[I(cn, cp)] == TXN_NONE && qlen[I(cn, cp)] == 0 &&
				       migto[I(cn, cp)] == NOMIG);
				/* ... and exact */
				k = 0;
				do
				:: k < NN ->
					if
					:: k == cn -> skip
					:: k != cn && dir[I(cn, cp)] == DIR_HX -> assert(lst[I(k, cp)] == LOC_INV)
					:: k != cn && dir[I(cn, cp)] == DIR_SH ->
						assert((lst[I(k, cp)] == LOC_SH) == ((copyset[I(cn, cp)] & BIT(k)) != 0));
						assert(lst[I(k, cp)] != LOC_MOD)
					:: k != cn && dir[I(cn, cp)] == DIR_RX ->
						assert((lst[I(k, cp)] == LOC_MOD) == (owner[I(cn, cp)] == k));
						assert(lst[I(k, cp)] != LOC_SH)
					fi;
					k++
				:: else -> break
				od;
				assert(dir[I(cn, cp)] != DIR_HX || lst[I(cn, cp)] == LOC_MOD);
				assert(dir[I(cn, cp)] != DIR_SH || (lst[I(cn, cp)] == LOC_SH && copyset[I(cn, cp)] != 0));
				assert(dir[I(cn, cp)] != DIR_RX || lst[I(cn, cp)] == LOC_INV)
			:: else -> skip
			fi;
			cn++
		:: else -> break
		od;
		assert(cnt3 == 1); /* exactly one home */
		cp++
	:: else -> break
	od
}

active proctype quiescence()
{
end_wait:
	timeout;
	d_step { quiet(); skip }
}

init
{
	d_step {
		cp = 0;
		do
		:: cp < NPG ->
			cn = 0;
			do
			:: cn < NN ->
				hint[I(cn, cp)] = cp % NN;
				migto[I(cn, cp)] = NOMIG;
				if
				:: cn == cp % NN ->
					/* a home starts as the exclusive owner of a zero page */
					ishome[I(cn, cp)] = 1;
					lst[I(cn, cp)] = LOC_MOD;
					present[I(cn, cp)] = 1;
					writable[I(cn, cp)] = 1
				:: else -> skip
				fi;
				cn++
			:: else -> break
			od;
			cp++
		:: else -> break
		od
	}
	atomic {
		run node(0);
		run node(1);
		run node(2)
	}
}
