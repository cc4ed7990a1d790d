/*
 * SPIN model of the DSM coherence protocol engine (dsm/protocol.c).
 *
 * 3 nodes, NPG pages (2 by default; first home of page p: node p), home
 * migration. Every engine function has an inline of the same name below
 * that follows the C code statement by statement; docs/protocol.md is the
 * prose version and explains what this model found and how it is run
 * (tests/spin/run-spin.sh).
 *
 * Modelled
 *   - per node and page: local state, own pending request and want_write,
 *     is_home, home_hint (the forwarding pointer of a former home), and at
 *     the home the directory (dir, owner, copyset, unflushed), the
 *     transaction (txn, cur, acks_needed), migrate_to and the request queue;
 *   - the page table the engine's actions drive, as the simulator keeps it
 *     (present / writable / value): INSTALL, PROTECT, DROP, MAP_LOCAL, WAKE;
 *   - one FIFO channel per ordered pair of nodes carrying every message kind
 *     with its page, flags (DATA, EXCL), requester and hops, the data (the
 *     value last written into the page) and, for MIGRATE, the directory
 *     state, copyset and owner;
 *   - one CPU thread per node that reads or writes either page through the
 *     page table and faults into the engine when the mapping refuses it,
 *     then retries when woken (as the simulator's CPUs do);
 *   - bounded nondeterminism: maxw writes in all (values 1..maxw), maxmig
 *     home moves, each decided by the current home towards any other node
 *     at any time (dsm_engine_migrate_home), maxstale stale faults (a fault
 *     no thread waits for, as userfaultfd may deliver). init picks the
 *     bounds: one search covers every configuration listed there.
 * Not modelled: peer failure (LOST, -EHOSTDOWN, GRANT with F_ERROR), the
 * counters, and req_id (see below).
 *
 * Abstractions (none changes a decision the engine takes)
 *   - req_id: a node has at most one request per page, so the engine's
 *     check "GRANT.req_id == our pending req_id" can only fail if a request
 *     is served twice. The model keeps no id (a counter would multiply the
 *     state space by the number of requests) but asserts that every request
 *     finishes exactly once (finish_own_request) and that a GRANT only
 *     arrives while a request is pending (on_grant, as the engine does): a
 *     duplicate is then caught when its second GRANT or local finish comes.
 *   - fields the engine never reads in the current state are zeroed so
 *     that equal states compare equal: owner unless REMOTE_EXCL, cur once
 *     the transaction is over, the directory of a former home, the bytes of
 *     a dropped copy;
 *   - finish_own_request() ends in C with a tail call start_request(page,
 *     true); Promela inlines cannot recurse, so that restart is deferred to
 *     the end of the step (do_restart), which leads to the same outcome
 *     (explained there);
 *   - a read that hits the mapping is no step of its own (it would change
 *     nothing and keep the system from ever being stuck); check() asserts in
 *     every state that every mapped copy holds the last value written, which
 *     is what such a read would return.
 *
 * Checked
 *   - after every step (check()): at most one MODIFIED copy per page, no
 *     SHARED copy next to a MODIFIED one, every valid copy holds
 *     last_written[page], the page table agrees with the local state, at
 *     most one home per page;
 *   - every read that completes after a fault returns last_written[page];
 *   - the engine never takes one of its protocol_errors paths (the asserts
 *     marked "protocol error");
 *   - no channel or queue overflows, no request is forwarded more often
 *     than the page moved, the data a message carries is really there;
 *   - when no step is possible any more (timeout), the system must be
 *     quiet (quiescence()): no message in flight, no thread blocked, no
 *     request pending, every directory idle, exact (it names precisely the
 *     copies that exist) and exactly one home per page. Otherwise the end
 *     state is invalid: a request pending with nothing in flight is a hang.
 *
 * Options: -DNO_FLUSH: the old home migrates without the FLUSH round, a
 * mutation that must be caught (tests/spin/run-spin.sh --expect-fail);
 * -DFULL: the full configuration only (too big for an exhaustive search
 * here: use run-spin.sh --bitstate); -DSMALL: a tiny one, for a
 * non-progress search (-DNP, pan -l); -DCAP=n: channel capacity.
 */

#define NN 3 /* nodes */
#ifndef NPG
#define NPG 2 /* pages */
#endif
#ifndef CAP
#define CAP 8 /* channel capacity; overflow is an error */
#endif
#define QCAP NN /* a home queues at most one request per node */

/* enum dsm_local_state */
#define LOC_INV 0
#define LOC_SH 1
#define LOC_MOD 2
/* enum dsm_dir_state (LOST is not modelled) */
#define DIR_HX 0 /* HOME_EXCL */
#define DIR_SH 1 /* SHARED */
#define DIR_RX 2 /* REMOTE_EXCL */
/* enum txn_kind */
#define TXN_NONE 0
#define TXN_INV 1
#define TXN_FS 2 /* FETCH_SHARED */
#define TXN_FE 3 /* FETCH_EXCL */
#define TXN_FLUSH 4
/* enum pending_kind */
#define PEND_NONE 0
#define PEND_R 1
#define PEND_W 2
/* DSM_MSG_F_DATA, DSM_MSG_F_EXCL */
#define F_DATA 1
#define F_EXCL 2
/* enum dsm_data_source */
#define D_NONE 0
#define D_LOCAL 1
#define D_INCOMING 2
/* migrate_to == -1 */
#define NOMIG 3
/* CPU thread */
#define T_IDLE 0
#define T_BLOCKED 1
#define T_WOKEN 2

mtype = { READ_REQ, WRITE_REQ, GRANT, INV, INV_ACK, FETCH, FETCH_REPLY, MIGRATE, FLUSH, FLUSH_ACK };

#define I(n, p) ((n) * NPG + (p))
#define BIT(n) (1 << (n))
/* the channel src -> dst */
#define CH(s, d) ((s) * (NN - 1) + ((d) > (s) -> (d) - 1 : (d)))

/* struct dsm_req in a byte: requester, hops, is_write */
#define REQ(n, hops, w) ((n) | ((hops) << 2) | ((w) << 4))
#define RQ_N(r) ((r) & 3)
#define RQ_HOPS(r) (((r) >> 2) & 3)
#define RQ_W(r) (((r) >> 4) & 1)
/* MIGRATE: dir_state, copyset, owner */
#define MX(d, cs, o) ((d) | ((cs) << 2) | ((o) << 5))
#define MX_DIR(x) ((x) & 3)
#define MX_CS(x) (((x) >> 2) & 7)
#define MX_OWN(x) (((x) >> 5) & 3)

/*
 * A message: kind, then page | flags << 1 | value << 3 (value: the page's
 * contents when F_DATA), then the request (requester | hops << 2: READ_REQ,
 * WRITE_REQ, GRANT) or the directory (MIGRATE). src and dst are the channel.
 */
chan ch[NN * (NN - 1)] = [CAP] of { mtype, byte, byte };

/* ---- per node and page, at index I(node, page) ---- */
byte lst[NN * NPG];     /* local state, LOC_* */
byte pend[NN * NPG];    /* PEND_*: our own request in flight */
bit wantw[NN * NPG];    /* a write fault came while a read was pending */
bit ishome[NN * NPG];
byte hint[NN * NPG];    /* home_hint, the forwarding pointer of a former home */
byte dir[NN * NPG];     /* DIR_*, meaningful at the home only */
byte txn[NN * NPG];     /* TXN_* */
byte owner[NN * NPG];
byte acks[NN * NPG];    /* acks_needed */
byte migto[NN * NPG];   /* migrate_to, NOMIG for -1 */
byte copyset[NN * NPG]; /* bit n: node n holds a read-only copy */
byte unfl[NN * NPG];    /* unflushed: granted to since their last reply */
byte cur[NN * NPG];     /* the request of the transaction in progress */
byte qlen[NN * NPG];
byte q[NN * NPG * QCAP]; /* the queue, head first */
/* the page table */
bit present[NN * NPG];
bit writable[NN * NPG];
byte value[NN * NPG];
/* one CPU thread per node */
byte tst[NN];
byte tpg[NN];
bit tw[NN];
/* the configuration (constant once init has chosen it) */
byte npages;   /* pages the threads and homes use: 1 or NPG */
byte maxw;     /* writes in all, values 1..maxw (at most 7) */
byte maxmig;   /* home moves in all (at most 3) */
byte maxstale; /* stale faults in all */
/* bounds, and the reference for sequential consistency */
byte lastw[NPG]; /* last value written into the page */
byte wstarted;   /* writes begun (<= maxw) */
byte wcount;     /* writes done, also the last value handed out */
byte migs;       /* home moves decided */
byte stale;      /* stale faults injected */

/* scratch, not part of the state: every step below is a single d_step */
hidden byte mk, mpf, marg, mp, mf, mv, mr, mx; /* the message being handled */
hidden byte rc, r1, r2, rf; /* requests, one name per nesting level */
hidden byte others, hadcopy, again, restart, selflike, to, flush, k, kf, gfl, gval;
hidden byte ci, cn, cp, nhomes;

/* ---- actions (struct dsm_action), applied to the page table ---- */

inline send(sFrom, sTo, sKind, sPage, sFlags, sArg, sVal)
{
	assert(sFrom != sTo && sTo < NN);
	assert(len(ch[CH(sFrom, sTo)]) < CAP);
	ch[CH(sFrom, sTo)]!sKind, (sPage) | ((sFlags) << 1) | ((sVal) << 3), sArg
}

inline act_install(n, p, w, val)
{
	assert(mf & F_DATA); /* the payload of the message being handled */
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

/* finish_own_request(); its tail call start_request(page, true) is
 * do_restart() at the end of the step */
inline finish_own_request(n, p)
{
	assert(pend[I(n, p)] != PEND_NONE); /* every request finishes exactly once */
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
	send(n, RQ_N(r), GRANT, p, gfl, RQ_N(r), gval)
}

inline home_take_exclusive(n, p)
{
	dir[I(n, p)] = DIR_HX;
	copyset[I(n, p)] = 0;
	lst[I(n, p)] = LOC_MOD;
	act_protect(n, p, 1)
}

/* all other copies are gone and the home's copy is valid: grant r */
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
	send(n, owner[I(n, p)], FETCH, p, (excl -> F_EXCL : 0), 0, 0)
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
		assert(owner[I(n, p)] != RQ_N(r)); /* protocol error: the owner cannot miss */
		begin_fetch(n, p, r, 0)
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
					send(n, k, INV, p, 0, 0, 0)
				:: else -> skip
				fi;
				k++
			:: else -> break
			od
		fi
	:: dir[I(n, p)] == DIR_RX ->
		assert(owner[I(n, p)] != RQ_N(r)); /* protocol error: the owner cannot miss */
		begin_fetch(n, p, r, 1)
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
	if
	:: ishome[I(n, p)] ->
		r1 = REQ(n, 0, w);
		home_request(n, p, r1)
	:: else ->
		send(n, hint[I(n, p)], (w -> WRITE_REQ : READ_REQ), p, 0, REQ(n, 0, 0), 0)
	fi
}

/*
 * The tail of finish_own_request(): start_request(page, true), run at the
 * end of the step instead of inside finish_own_request(). Same outcome:
 * between the two points nothing reads this node's own pending state, and
 * when the caller is drain_queue() the restarted write in C is either
 * served at once (queue empty, directory idle: here the drain ends on an
 * empty queue and the write is served now, on the same directory) or
 * appended to the queue (here it is appended behind whatever the drain
 * left, the same order). on_fetch_reply() calls it where C does, before
 * after_transaction(). A restarted write never restarts again.
 */
inline do_restart(n, p)
{
	if
	:: restart ->
		restart = 0;
		pend[I(n, p)] = PEND_W;
		if
		:: ishome[I(n, p)] ->
			r2 = REQ(n, 0, 1);
			if
			:: HOME_BUSY(n, p) -> enqueue(n, p, r2)
			:: else -> serve_write(n, p, r2)
			fi
		:: else ->
			send(n, hint[I(n, p)], WRITE_REQ, p, 0, REQ(n, 0, 0), 0)
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
		/* already served: map it and let the thread go */
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
	/* protocol error: a GRANT nobody waits for (the engine also compares
	 * req_id, see the top of this file) */
	assert(pend[I(n, p)] != PEND_NONE && RQ_N(mr) == n);
	hint[I(n, p)] = s;
	if
	:: mf & F_EXCL ->
		if
		:: mf & F_DATA -> act_install(n, p, 1, mv)
		:: else ->
			assert(lst[I(n, p)] == LOC_SH); /* protocol error: an upgrade without a copy */
			act_protect(n, p, 1)
		fi;
		lst[I(n, p)] = LOC_MOD
	:: else ->
		assert(mf & F_DATA); /* protocol error: a shared GRANT without data */
		act_install(n, p, 0, mv);
		lst[I(n, p)] = LOC_SH
	fi;
	finish_own_request(n, p)
}

inline on_inv(n, p, s)
{
	assert(!ishome[I(n, p)] && lst[I(n, p)] == LOC_SH); /* protocol error: INV at a non-sharer */
	act_drop(n, p);
	lst[I(n, p)] = LOC_INV;
	hint[I(n, p)] = s;
	send(n, s, INV_ACK, p, 0, 0, 0)
}

inline on_fetch(n, p, s)
{
	assert(!ishome[I(n, p)] && lst[I(n, p)] == LOC_MOD); /* protocol error: FETCH at a non-owner */
	/* stop local writers before the bytes are read for sending */
	act_protect(n, p, 0);
	send(n, s, FETCH_REPLY, p, F_DATA, 0, value[I(n, p)]);
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
	send(n, s, FLUSH_ACK, p, 0, 0, 0)
}

/* ---- home migration ---- */

inline forward_queue(n, p, t)
{
	do
	:: qlen[I(n, p)] > 0 ->
		dequeue(n, p, rf);
		assert(RQ_HOPS(rf) < maxmig);
		send(n, t, (RQ_W(rf) -> WRITE_REQ : READ_REQ), p, 0, REQ(RQ_N(rf), RQ_HOPS(rf) + 1, 0), 0)
	:: else -> break
	od
}

inline do_migrate(n, p)
{
	to = migto[I(n, p)];
	if
	:: dir[I(n, p)] == DIR_HX ->
		act_protect(n, p, 0);
		assert(present[I(n, p)]);
		send(n, to, MIGRATE, p, F_DATA, MX(DIR_HX, copyset[I(n, p)], owner[I(n, p)]), value[I(n, p)])
	:: dir[I(n, p)] == DIR_SH && !(copyset[I(n, p)] & BIT(to)) ->
		assert(present[I(n, p)]);
		send(n, to, MIGRATE, p, F_DATA, MX(DIR_SH, copyset[I(n, p)], owner[I(n, p)]), value[I(n, p)])
	:: else ->
		send(n, to, MIGRATE, p, 0, MX(dir[I(n, p)], copyset[I(n, p)], owner[I(n, p)]), 0)
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
	dir[I(n, p)] = 0; /* no longer read here */
	owner[I(n, p)] = 0;
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

/* the page has no transaction: continue a home move, or serve the queue */
inline after_transaction(n, p)
{
	if
	:: !ishome[I(n, p)] -> skip
	:: ishome[I(n, p)] && migto[I(n, p)] == NOMIG -> drain_queue(n, p)
	:: ishome[I(n, p)] && migto[I(n, p)] != NOMIG ->
#ifdef NO_FLUSH
		do_migrate(n, p) /* MUTATION: no FLUSH round */
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
					send(n, kf, FLUSH, p, 0, 0, 0)
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
		rc = REQ(RQ_N(mr), RQ_HOPS(mr), mk == WRITE_REQ);
		home_request(n, p, rc)
	:: else ->
		/* not (or no longer) the home: pass it along the forwarding pointer */
		assert(RQ_HOPS(mr) < maxmig);
		send(n, hint[I(n, p)], mk, p, mf, REQ(RQ_N(mr), RQ_HOPS(mr) + 1, 0), 0)
	fi
}

inline on_inv_ack(n, p, s)
{
	/* protocol error: an INV_ACK nobody waits for */
	assert(ishome[I(n, p)] && txn[I(n, p)] == TXN_INV && (copyset[I(n, p)] & BIT(s)) && acks[I(n, p)] > 0);
	copyset[I(n, p)] = copyset[I(n, p)] & ~BIT(s);
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(s);
	acks[I(n, p)]--;
	if
	:: acks[I(n, p)] == 0 ->
		rc = cur[I(n, p)];
		txn[I(n, p)] = TXN_NONE;
		cur[I(n, p)] = 0;
		finish_write(n, p, rc);
		after_transaction(n, p)
	:: else -> skip
	fi
}

inline on_fetch_reply(n, p, s)
{
	rc = cur[I(n, p)];
	/* protocol error: a FETCH_REPLY nobody waits for */
	assert(ishome[I(n, p)] && (txn[I(n, p)] == TXN_FS || txn[I(n, p)] == TXN_FE) &&
	       s == owner[I(n, p)] && (mf & F_DATA));
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(s);
	selflike = RQ_N(rc) == n;
	if
	:: txn[I(n, p)] == TXN_FS ->
		act_install(n, p, 0, mv);
		lst[I(n, p)] = LOC_SH;
		dir[I(n, p)] = DIR_SH;
		owner[I(n, p)] = 0;
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
			dir[I(n, p)] = DIR_HX;
			owner[I(n, p)] = 0
		:: else ->
			send_grant(n, p, rc, 1, D_INCOMING);
			dir[I(n, p)] = DIR_RX;
			owner[I(n, p)] = RQ_N(rc)
		fi
	fi;
	cur[I(n, p)] = 0;
	if
	:: RQ_N(rc) == n ->
		finish_own_request(n, p);
		do_restart(n, p) /* in C: inside finish_own_request, before after_transaction */
	:: else -> skip
	fi;
	after_transaction(n, p)
}

inline on_flush_ack(n, p, s)
{
	/* protocol error: a FLUSH_ACK nobody waits for */
	assert(ishome[I(n, p)] && txn[I(n, p)] == TXN_FLUSH && (unfl[I(n, p)] & BIT(s)));
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(s);
	acks[I(n, p)]--;
	if
	:: acks[I(n, p)] == 0 ->
		txn[I(n, p)] = TXN_NONE;
		after_transaction(n, p)
	:: else -> skip
	fi
}

/* dsm_engine_migrate_home(), called (by the step's guard) only when this
 * node is the home and no move is under way: otherwise the engine returns
 * -EINVAL or -EBUSY and nothing changes */
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
	assert(!ishome[I(n, p)]); /* protocol error: MIGRATE to the home */
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
		assert(mf & F_DATA); /* protocol error: HOME_EXCL without the data */
		act_install(n, p, 1, mv);
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
	fi;
	if
	:: dir[I(n, p)] != DIR_RX -> owner[I(n, p)] = 0
	:: else -> skip
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

/* the page table agrees with the local state; a valid copy is up to date */
#define COPY_OK(n, p) \
	((lst[I(n, p)] == LOC_INV -> !present[I(n, p)] : present[I(n, p)] && value[I(n, p)] == lastw[p]) && \
	 (lst[I(n, p)] != LOC_SH || !writable[I(n, p)]))
#define NMOD(p) ((lst[I(0, p)] == LOC_MOD) + (lst[I(1, p)] == LOC_MOD) + (lst[I(2, p)] == LOC_MOD))
#define NSH(p) ((lst[I(0, p)] == LOC_SH) + (lst[I(1, p)] == LOC_SH) + (lst[I(2, p)] == LOC_SH))
#define NHOME(p) (ishome[I(0, p)] + ishome[I(1, p)] + ishome[I(2, p)])

inline check_page(p)
{
	assert(COPY_OK(0, p) && COPY_OK(1, p) && COPY_OK(2, p));
	assert(NMOD(p) <= 1);              /* a single writer */
	assert(NMOD(p) == 0 || NSH(p) == 0); /* and no reader beside it */
	assert(NHOME(p) <= 1)              /* at most one home */
}

inline check()
{
	check_page(0);
#if NPG > 1
	check_page(1);
#endif
	skip
}

/* ---- processes ---- */

/*
 * dsm_engine_receive(): one step per (channel, kind), taken when a message
 * of that kind is at the channel's head (so that every d_step stays within
 * SPIN's size limit). RECV ends with the deferred restart; RECV0 is for the
 * handlers that cannot finish the node's own request, and checks that.
 */
#define RECV(s, kind, handler) \
	d_step { ch[CH(s, me)]?kind, mpf, marg -> \
		mk = kind; mp = mpf & 1; mf = (mpf >> 1) & 3; mv = mpf >> 3; mr = marg; mx = marg; \
		handler(me, mp, s); do_restart(me, mp); check() }
#define RECV0(s, kind, handler) \
	d_step { ch[CH(s, me)]?kind, mpf, marg -> \
		mk = kind; mp = mpf & 1; mf = (mpf >> 1) & 3; mv = mpf >> 3; mr = marg; mx = marg; \
		handler(me, mp, s); assert(!restart); check() }
#define RECV_ALL(s) \
	RECV(s, READ_REQ, on_request) \
	:: RECV(s, WRITE_REQ, on_request) \
	:: RECV(s, GRANT, on_grant) \
	:: RECV0(s, INV, on_inv) \
	:: RECV(s, INV_ACK, on_inv_ack) \
	:: RECV0(s, FETCH, on_fetch) \
	:: RECV(s, FETCH_REPLY, on_fetch_reply) \
	:: RECV0(s, MIGRATE, on_migrate) \
	:: RECV0(s, FLUSH, on_flush) \
	:: RECV(s, FLUSH_ACK, on_flush_ack)
/* the thread starts a read (only of a page it does not hold: see above) */
#define READ(p) \
	d_step { tst[me] == T_IDLE && p < npages && !present[I(me, p)] -> begin_access(me, p, 0); assert(!restart); check() }
#define WRITE(p) \
	d_step { tst[me] == T_IDLE && p < npages && wstarted < maxw -> begin_access(me, p, 1); assert(!restart); check() }
#define STALE(p, w) \
	d_step { p < npages && stale < maxstale -> stale++; local_fault(me, p, w); assert(!restart); check() }
#define MIGRATE_TO(p, t) \
	d_step { p < npages && migs < maxmig && ishome[I(me, p)] && migto[I(me, p)] == NOMIG -> \
		migs++; migrate_home(me, p, t); do_restart(me, p); check() }

proctype node(byte me)
{
end_idle:
	do
	:: RECV_ALL((me + 1) % NN)
	:: RECV_ALL((me + 2) % NN)
	/* a woken thread retries its access */
	:: d_step { tst[me] == T_WOKEN -> access(me); assert(!restart); check() }
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

/* nothing can move any more: only a quiet system is a valid end state */
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
		nhomes = 0;
		cn = 0;
		do
		:: cn < NN ->
			assert(pend[I(cn, cp)] == PEND_NONE); /* no request pending forever */
			if
			:: ishome[I(cn, cp)] ->
				nhomes++;
				/* the directory is idle ... */
				assert(txn[I(cn, cp)] == TXN_NONE && qlen[I(cn, cp)] == 0 &&
				       migto[I(cn, cp)] == NOMIG);
				/* ... and exact */
				assert(dir[I(cn, cp)] != DIR_HX || lst[I(cn, cp)] == LOC_MOD);
				assert(dir[I(cn, cp)] != DIR_SH || (lst[I(cn, cp)] == LOC_SH && copyset[I(cn, cp)] != 0));
				assert(dir[I(cn, cp)] != DIR_RX || lst[I(cn, cp)] == LOC_INV);
				k = 0;
				do
				:: k < NN && k == cn -> k++
				:: k < NN && k != cn ->
					assert(dir[I(cn, cp)] != DIR_HX || lst[I(k, cp)] == LOC_INV);
					assert(dir[I(cn, cp)] != DIR_SH ||
					       (lst[I(k, cp)] == LOC_SH) == ((copyset[I(cn, cp)] & BIT(k)) != 0) &&
					       lst[I(k, cp)] != LOC_MOD);
					assert(dir[I(cn, cp)] != DIR_RX ||
					       (lst[I(k, cp)] == LOC_MOD) == (owner[I(cn, cp)] == k) &&
					       lst[I(k, cp)] != LOC_SH);
					k++
				:: else -> break
				od
			:: else -> skip
			fi;
			cn++
		:: else -> break
		od;
		assert(nhomes == 1); /* exactly one home */
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

/* one exhaustive search covers every configuration listed (see
 * docs/protocol.md for why these) */
#define CONFIG(pages, w, m, st) \
	d_step { npages = pages; maxw = w; maxmig = m; maxstale = st; skip }

init
{
	if
#if defined(FULL)
	:: CONFIG(NPG, 3, 2, 1) /* too big for an exhaustive search here */
#elif defined(SMALL)
	:: CONFIG(1, 1, 0, 0)   /* for a quick non-progress (-DNP) search */
#else
	:: CONFIG(NPG, 2, 1, 0) /* both pages, fewer writes and moves */
	:: CONFIG(1, 3, 2, 0)   /* one page, every write and move */
	:: CONFIG(1, 2, 2, 1)   /* one page, stale faults and every move */
#endif
	fi;
	d_step {
		assert(maxw <= 7 && maxmig <= 3 && npages <= NPG);
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
		od;
		skip
	}
	atomic {
		run node(0);
		run node(1);
		run node(2)
	}
}
