/* SPDX-License-Identifier: GPL-2.0-or-later */
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
 *   - with -DBUDGET, memory budgets (docs/protocol.md, "Budgets and
 *     eviction"): every node holds at most budget[n] frames (home pages,
 *     copies, frames reserved for requests in flight and for homes it
 *     accepted); a request that finds no free frame waits (wroom) in the
 *     node's FIFO; EVICT / EVICT_ACK, a dirty copy pulled back by a FETCH;
 *     home moves offered (OFFER) and accepted or refused (OFFER_REPLY).
 *     The runtime's side is nondeterministic: whenever requests wait for
 *     room and a copy may be evicted, any such copy may be evicted (the
 *     victim choice does not matter to correctness), and maxevict more
 *     evictions of any copy at any time.
 * Not modelled: peer failure (LOST, -EHOSTDOWN, GRANT with F_ERROR), the
 * counters, req_id (see below), the "replicated" hint of shared GRANTs
 * (it only steers the runtime's victim choice, which is free here) and
 * the NEED_ROOM / MOVE_REFUSED actions (information for the runtime: the
 * nondeterministic evictions and home moves cover every answer to them).
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
 *     state is invalid: a request pending with nothing in flight is a hang;
 *   - with budgets, in every state: no node holds more frames than its
 *     budget, nor more home pages than budget - MINCACHE; no page is lost:
 *     exactly one home or one MIGRATE in flight, and a valid copy or a
 *     message carrying the page's data; when quiet, nothing waits for room
 *     and no home move is offered.
 *
 * Options: -DNO_FLUSH: the old home migrates without the FLUSH round, a
 * mutation that must be caught (tests/spin/run-spin.sh --expect-fail);
 * -DBUDGET: budgets, the configurations listed in init; with it,
 * -DWB_NO_WAIT: a dirty copy is dropped when its EVICT goes out, without
 * waiting for the home to take it (a mutation that must be caught);
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
/* migrate_to == -1 (and offer_to == -1) */
#define NOMIG 3
/* enum pending_kind: our own EVICT, not answered yet */
#define PEND_E 3
/* OFFER_REPLY: refused (DSM_MSG_F_ERROR) */
#define F_ERR 4
/* budgets: frames every node keeps for caching at least */
#define MINCACHE 1
/* CPU thread */
#define T_IDLE 0
#define T_BLOCKED 1
#define T_WOKEN 2

mtype = { READ_REQ, WRITE_REQ, GRANT, INV, INV_ACK, FETCH, FETCH_REPLY, MIGRATE, FLUSH, FLUSH_ACK,
	  EVICT, EVICT_ACK, OFFER, OFFER_REPLY };

#define I(n, p) ((n) * NPG + (p))
#define BIT(n) (1 << (n))
/* the channel src -> dst */
#define CH(s, d) ((s) * (NN - 1) + ((d) > (s) -> (d) - 1 : (d)))

/* struct dsm_req in a byte: requester, hops, is_write, is_evict */
#define REQ(n, hops, w) ((n) | ((hops) << 2) | ((w) << 4))
#define REQ_EV 32
#define RQ_N(r) ((r) & 3)
#define RQ_HOPS(r) (((r) >> 2) & 3)
#define RQ_W(r) (((r) >> 4) & 1)
#define RQ_EV(r) (((r) >> 5) & 1)
/* MIGRATE: dir_state, copyset, owner */
#define MX(d, cs, o) ((d) | ((cs) << 2) | ((o) << 5))
#define MX_DIR(x) ((x) & 3)
#define MX_CS(x) (((x) >> 2) & 7)
#define MX_OWN(x) (((x) >> 5) & 3)

/*
 * A message: kind, then page | flags << 1 | value << 4 (value: the page's
 * contents when F_DATA), then the request (requester | hops << 2: READ_REQ,
 * WRITE_REQ, EVICT, GRANT) or the directory (MIGRATE). src and dst are the
 * channel.
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
/* budgets, per node and page */
bit wroom[NN * NPG];   /* pending READ/WRITE not sent: no free frame */
byte wafter[NN * NPG]; /* PEND_R/PEND_W: a fault came during our EVICT */
bit resv[NN * NPG];    /* we accepted an OFFER: a frame waits for the MIGRATE */
byte offto[NN * NPG];  /* home: OFFER to this node unanswered, or NOMIG */
/* ... per node: the FIFO of pages waiting for a frame (page + 1, head first) */
byte wq0[NN];
byte wq1[NN];
byte budget[NN];       /* frames (0: no budget) */
/* ... per page: messages in flight that carry the page's data, and MIGRATEs */
byte datafl[NPG];
byte migfl[NPG];
/* one CPU thread per node */
byte tst[NN];
byte tpg[NN];
bit tw[NN];
/* the configuration (constant once init has chosen it) */
byte npages;   /* pages the threads and homes use: 1 or NPG */
byte maxw;     /* writes in all, values 1..maxw (at most 7) */
byte maxmig;   /* home moves in all (at most 3) */
byte maxstale; /* stale faults in all */
byte maxr;     /* reads in all (0: unbounded; bounded with budgets, see READ) */
byte maxevict; /* evictions not asked for by a waiting request */
/* bounds, and the reference for sequential consistency */
byte lastw[NPG]; /* last value written into the page */
byte wstarted;   /* writes begun (<= maxw) */
byte wcount;     /* writes done, also the last value handed out */
byte migs;       /* home moves decided */
byte stale;      /* stale faults injected */
byte rstarted;   /* reads begun (counted only when maxr > 0) */
byte evicts;     /* evictions not asked for */

/* scratch, not part of the state: every step below is a single d_step */
hidden byte mk, mpf, marg, mp, mf, mv, mr, mx; /* the message being handled */
hidden byte rc, r1, r2, rf; /* requests, one name per nesting level */
hidden byte others, hadcopy, again, restart, selflike, to, flush, k, kf, gfl, gval;
hidden byte ci, cn, cp, nhomes;
hidden byte ew, ep, why; /* budgets */

/* ---- actions (struct dsm_action), applied to the page table ---- */

inline send(sFrom, sTo, sKind, sPage, sFlags, sArg, sVal)
{
	assert(sFrom != sTo && sTo < NN);
	assert(len(ch[CH(sFrom, sTo)]) < CAP);
	ch[CH(sFrom, sTo)]!sKind, (sPage) | ((sFlags) << 1) | ((sVal) << 4), sArg;
#ifdef BUDGET
	if
	:: (sFlags) & F_DATA -> datafl[sPage]++
	:: else -> skip
	fi;
	if
	:: sKind == MIGRATE -> migfl[sPage]++
	:: else -> skip
	fi
#else
	skip
#endif
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

/* Coverage probes: with -DPROBE=k, reaching probe k is an error, so a
 * search that fails proves branch k reachable (run-spin.sh --expect-fail
 * BUILD -DBUDGET -DPROBE=k; docs/protocol.md lists them). */
#ifdef PROBE
#define PROBE_AT(k) assert(PROBE != k)
#else
#define PROBE_AT(k) skip
#endif

/* ---- budget accounting (page_acct() in C; here computed from the state) ---- */

#define ASKED(n, p) ((pend[I(n, p)] == PEND_R || pend[I(n, p)] == PEND_W) && !wroom[I(n, p)])
#define FRAME(n, p) (ishome[I(n, p)] || resv[I(n, p)] || lst[I(n, p)] != LOC_INV || ASKED(n, p))
#define HOMEF(n, p) (ishome[I(n, p)] || resv[I(n, p)])
#define EVICTABLE(n, p) (budget[n] > 0 && !ishome[I(n, p)] && !resv[I(n, p)] && \
			 lst[I(n, p)] != LOC_INV && pend[I(n, p)] == PEND_NONE)
#define DRAINING(n, p) (!ishome[I(n, p)] && lst[I(n, p)] != LOC_INV && pend[I(n, p)] == PEND_E)
#if NPG > 1
#define USED(n) (FRAME(n, 0) + FRAME(n, 1))
#define HOMES(n) (HOMEF(n, 0) + HOMEF(n, 1))
#define NDRAIN(n) (DRAINING(n, 0) + DRAINING(n, 1))
#else
#define USED(n) FRAME(n, 0)
#define HOMES(n) HOMEF(n, 0)
#define NDRAIN(n) DRAINING(n, 0)
#endif
#define ROOM(n, p) (budget[n] == 0 || FRAME(n, p) || USED(n) < budget[n])
#define WAITING(n) ((wq0[n] != 0) + (wq1[n] != 0))
/* NEED_ROOM: requests wait for more frames than evictions in flight free */
#define ROOM_WANTED(n) (WAITING(n) > NDRAIN(n))

inline wait_push(n, p)
{
	if
	:: wq0[n] == 0 -> wq0[n] = p + 1
	:: else -> assert(wq1[n] == 0); wq1[n] = p + 1
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

/* node RQ_N(r) gives its copy up; every GRANT to it is installed */
inline serve_evict(n, p, r)
{
	unfl[I(n, p)] = unfl[I(n, p)] & ~BIT(RQ_N(r));
	if
	:: dir[I(n, p)] == DIR_RX && owner[I(n, p)] == RQ_N(r) ->
		PROBE_AT(5);
		begin_fetch(n, p, r, 1) /* a dirty copy: pull it back, then ack */
	:: else ->
		if
		:: dir[I(n, p)] == DIR_SH && (copyset[I(n, p)] & BIT(RQ_N(r))) ->
			PROBE_AT(7);
			copyset[I(n, p)] = copyset[I(n, p)] & ~BIT(RQ_N(r));
			if
			:: copyset[I(n, p)] == 0 -> home_take_exclusive(n, p)
			:: else -> skip
			fi
		:: else -> PROBE_AT(6) /* its copy went meanwhile (INV, FETCH) */
		fi;
		send(n, RQ_N(r), EVICT_ACK, p, 0, 0, 0)
	fi
}

inline home_serve(n, p, r)
{
	if
	:: RQ_EV(r) -> serve_evict(n, p, r)
	:: !RQ_EV(r) && RQ_W(r) -> serve_write(n, p, r)
	:: !RQ_EV(r) && !RQ_W(r) -> serve_read(n, p, r)
	fi
}

inline home_request(n, p, r)
{
	if
	:: HOME_BUSY(n, p) ->
		if
		:: RQ_EV(r) -> PROBE_AT(16)
		:: else -> skip
		fi;
		enqueue(n, p, r)
	:: else -> home_serve(n, p, r)
	fi
}

/* our pending READ/WRITE (with its frame) goes out */
inline send_request(n, p)
{
	if
	:: ishome[I(n, p)] ->
		r1 = REQ(n, 0, pend[I(n, p)] == PEND_W);
		home_request(n, p, r1)
	:: else ->
		send(n, hint[I(n, p)], (pend[I(n, p)] == PEND_W -> WRITE_REQ : READ_REQ), p, 0, REQ(n, 0, 0), 0)
	fi
}

inline start_request(n, p, w)
{
	ew = !ishome[I(n, p)] && !ROOM(n, p); /* no frame: wait for one */
	pend[I(n, p)] = (w -> PEND_W : PEND_R);
	if
	:: ew ->
		PROBE_AT(8);
		wroom[I(n, p)] = 1;
		wait_push(n, p)
	:: else -> send_request(n, p)
	fi
}

/* admit_waiting(): the requests waiting for a frame go out, oldest first,
 * while frames are free (end of every step of a node with a budget) */
inline admit(n)
{
	do
	:: wq0[n] != 0 && USED(n) < budget[n] ->
		ep = wq0[n] - 1;
		wq0[n] = wq1[n];
		wq1[n] = 0;
		assert(wroom[I(n, ep)] && !ishome[I(n, ep)]);
		PROBE_AT(9);
		wroom[I(n, ep)] = 0;
		/* send_request(), whose home branch cannot be taken here (a home
		 * never waits for room) */
		send(n, hint[I(n, ep)], (pend[I(n, ep)] == PEND_W -> WRITE_REQ : READ_REQ), ep, 0, REQ(n, 0, 0), 0)
	:: else -> break
	od
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

/* a dirty copy being evicted is write-protected until the home takes it */
#define EVICTING(n, p) (pend[I(n, p)] == PEND_E)

inline local_fault(n, p, w)
{
	if
	:: PERMITS(n, p, w) && !(EVICTING(n, p) && w) ->
		/* already served: map it and let the thread go */
		act_map_local(n, p, lst[I(n, p)] == LOC_MOD && !EVICTING(n, p));
		wake(n, p)
	:: !(PERMITS(n, p, w) && !(EVICTING(n, p) && w)) && EVICTING(n, p) ->
		/* no request before the home has answered the EVICT */
		if
		:: wafter[I(n, p)] != PEND_W -> PROBE_AT(10); wafter[I(n, p)] = (w -> PEND_W : PEND_R)
		:: else -> skip
		fi
	:: !PERMITS(n, p, w) && pend[I(n, p)] != PEND_NONE && !EVICTING(n, p) ->
		if
		:: w && pend[I(n, p)] == PEND_R && wroom[I(n, p)] -> pend[I(n, p)] = PEND_W /* not sent yet */
		:: w && pend[I(n, p)] == PEND_R && !wroom[I(n, p)] -> wantw[I(n, p)] = 1
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
	assert((pend[I(n, p)] == PEND_R || pend[I(n, p)] == PEND_W) && !wroom[I(n, p)] && RQ_N(mr) == n);
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
	/* protocol error: INV at a non-sharer (one that evicted its clean copy
	 * and whose EVICT the home has not served is still a sharer for it) */
	assert(!ishome[I(n, p)] && (lst[I(n, p)] == LOC_SH || (lst[I(n, p)] == LOC_INV && EVICTING(n, p))));
	if
	:: lst[I(n, p)] == LOC_INV -> PROBE_AT(4)
	:: else -> skip
	fi;
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
	:: (mf & F_EXCL) || EVICTING(n, p) -> /* a copy being evicted goes anyway */
		if
		:: !(mf & F_EXCL) -> PROBE_AT(3)
		:: else -> skip
		fi;
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
		if
		:: RQ_EV(rf) -> PROBE_AT(17)
		:: else -> skip
		fi;
		send(n, t, (RQ_EV(rf) -> EVICT : (RQ_W(rf) -> WRITE_REQ : READ_REQ)), p, 0, REQ(RQ_N(rf), RQ_HOPS(rf) + 1, 0), 0)
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
		rc = REQ(RQ_N(mr), RQ_HOPS(mr), mk == WRITE_REQ) | (mk == EVICT -> REQ_EV : 0);
		/* protocol error: our own EVICT back at us as home */
		assert(!(mk == EVICT && RQ_N(mr) == n));
		home_request(n, p, rc)
	:: else ->
		/* not (or no longer) the home: pass it along the forwarding pointer */
		assert(RQ_HOPS(mr) < maxmig);
		if
		:: mk == EVICT -> PROBE_AT(15)
		:: else -> skip
		fi;
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
	selflike = RQ_N(rc) == n || RQ_EV(rc); /* the home keeps a write-back */
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
	:: RQ_N(rc) != n && RQ_EV(rc) ->
		send(n, RQ_N(rc), EVICT_ACK, p, 0, 0, 0)
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
	if
	:: budget[n] > 0 ->
		/* ask first; requests are served meanwhile */
		offto[I(n, p)] = t;
		send(n, t, OFFER, p, 0, 0, 0)
	:: else ->
		migto[I(n, p)] = t;
		if
		:: txn[I(n, p)] == TXN_NONE -> after_transaction(n, p)
		:: else -> skip
		fi
	fi
}

/* the home offers us the page's home: reserve a frame, or refuse */
inline on_offer(n, p, s)
{
	assert(!ishome[I(n, p)] && !resv[I(n, p)]); /* protocol error: OFFER to a home */
	why = EVICTING(n, p) || wroom[I(n, p)] ||
	      (budget[n] > 0 && HOMES(n) + 1 > budget[n] - MINCACHE) || !ROOM(n, p);
	if
	:: why ->
		if
		:: EVICTING(n, p) -> PROBE_AT(14) /* refused: evicting */
		:: else -> PROBE_AT(13)
		fi;
		send(n, s, OFFER_REPLY, p, F_ERR, 0, 0)
	:: else ->
		PROBE_AT(12);
		resv[I(n, p)] = 1;
		send(n, s, OFFER_REPLY, p, 0, 0, 0)
	fi
}

inline on_offer_reply(n, p, s)
{
	assert(ishome[I(n, p)] && offto[I(n, p)] == s); /* protocol error: a reply nobody waits for */
	offto[I(n, p)] = NOMIG;
	if
	:: mf & F_ERR -> skip /* refused: the page stays */
	:: else ->
		migto[I(n, p)] = s;
		if
		:: txn[I(n, p)] == TXN_NONE -> after_transaction(n, p)
		:: else -> skip
		fi
	fi
}

/* the home answered our EVICT */
inline on_evict_ack(n, p, s)
{
	/* protocol error: an EVICT_ACK nobody waits for */
	assert(!ishome[I(n, p)] && EVICTING(n, p) && lst[I(n, p)] == LOC_INV);
	hint[I(n, p)] = s;
	pend[I(n, p)] = PEND_NONE;
	ep = wafter[I(n, p)];
	wafter[I(n, p)] = 0;
	if
	:: ep != 0 -> PROBE_AT(11); start_request(n, p, ep == PEND_W)
	:: else -> skip
	fi
}

/* dsm_engine_evict(), called (by the step's guard) only when it starts an
 * eviction */
inline evict(n, p)
{
	send(n, hint[I(n, p)], EVICT, p, 0, REQ(n, 0, 0), 0);
	if
	:: lst[I(n, p)] == LOC_SH ->
		PROBE_AT(2);
		act_drop(n, p); /* the home has the data */
		lst[I(n, p)] = LOC_INV
	:: else ->
		PROBE_AT(1);
		act_protect(n, p, 0); /* the only copy: until the home FETCHes it */
#ifdef WB_NO_WAIT
		act_drop(n, p); /* MUTATION: drop it at once */
		lst[I(n, p)] = LOC_INV;
#endif
		skip
	fi;
	pend[I(n, p)] = PEND_E;
	wafter[I(n, p)] = 0
}

inline on_migrate(n, p, s)
{
	assert(!ishome[I(n, p)]); /* protocol error: MIGRATE to the home */
	assert(budget[n] == 0 || resv[I(n, p)]); /* protocol error: a move we did not accept */
	if
	:: resv[I(n, p)] -> PROBE_AT(18)
	:: else -> skip
	fi;
	resv[I(n, p)] = 0;
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
	:: !w && maxr > 0 -> rstarted++
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

#ifdef BUDGET
/* no page lost: one home or one MIGRATE on its way, and the data in a
 * valid copy (which check_page() compares with the last write) or in a
 * message */
inline check_lost(p)
{
	assert(NHOME(p) + migfl[p] == 1);
	assert(NMOD(p) + NSH(p) > 0 || datafl[p] > 0)
}

/* no node over its budget, nor over its share of home pages */
#define BUDGET_OK(n) (budget[n] == 0 || (USED(n) <= budget[n] && HOMES(n) + MINCACHE <= budget[n]))
#endif

inline check()
{
	check_page(0);
#if NPG > 1
	check_page(1);
#endif
#ifdef BUDGET
	check_lost(0);
#if NPG > 1
	check_lost(1);
#endif
	assert(BUDGET_OK(0) && BUDGET_OK(1) && BUDGET_OK(2));
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
#ifdef BUDGET
/* the end of every step of a node: requests waiting for a frame go out
 * (admit_waiting() in event_end()) */
#define END_STEP admit(me)
/* a message leaves the network */
#define ARRIVED \
	if \
	:: mf & F_DATA -> datafl[mp]-- \
	:: else -> skip \
	fi; \
	if \
	:: mk == MIGRATE -> migfl[mp]-- \
	:: else -> skip \
	fi
#else
#define END_STEP skip
#define ARRIVED skip
#endif
#define RECV(s, kind, handler) \
	d_step { ch[CH(s, me)]?kind, mpf, marg -> \
		mk = kind; mp = mpf & 1; mf = (mpf >> 1) & 7; mv = mpf >> 4; mr = marg; mx = marg; \
		ARRIVED; handler(me, mp, s); do_restart(me, mp); END_STEP; check() }
#define RECV0(s, kind, handler) \
	d_step { ch[CH(s, me)]?kind, mpf, marg -> \
		mk = kind; mp = mpf & 1; mf = (mpf >> 1) & 7; mv = mpf >> 4; mr = marg; mx = marg; \
		ARRIVED; handler(me, mp, s); assert(!restart); END_STEP; check() }
#ifdef BUDGET
#define RECV_BUDGET(s) \
	:: RECV(s, EVICT, on_request) \
	:: RECV0(s, EVICT_ACK, on_evict_ack) \
	:: RECV0(s, OFFER, on_offer) \
	:: RECV(s, OFFER_REPLY, on_offer_reply)
#else
#define RECV_BUDGET(s)
#endif
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
	:: RECV(s, FLUSH_ACK, on_flush_ack) \
	RECV_BUDGET(s)
/* the thread starts a read (only of a page it does not hold: see above;
 * with budgets a node may never hold every page, so reads are bounded) */
#define READ(p) \
	d_step { tst[me] == T_IDLE && p < npages && !present[I(me, p)] && (maxr == 0 || rstarted < maxr) -> \
		begin_access(me, p, 0); assert(!restart); END_STEP; check() }
#define WRITE(p) \
	d_step { tst[me] == T_IDLE && p < npages && wstarted < maxw -> begin_access(me, p, 1); assert(!restart); END_STEP; check() }
#define STALE(p, w) \
	d_step { p < npages && stale < maxstale -> stale++; local_fault(me, p, w); assert(!restart); END_STEP; check() }
#define MIGRATE_TO(p, t) \
	d_step { p < npages && migs < maxmig && ishome[I(me, p)] && migto[I(me, p)] == NOMIG && offto[I(me, p)] == NOMIG -> \
		migs++; migrate_home(me, p, t); do_restart(me, p); END_STEP; check() }
/* the runtime answers NEED_ROOM: any copy it may evict (the victim choice
 * does not matter to correctness), as long as requests wait for room ... */
#define EVICT_FOR_ROOM(p) \
	d_step { p < npages && ROOM_WANTED(me) && EVICTABLE(me, p) -> evict(me, p); END_STEP; check() }
/* ... and maxevict evictions of any copy at any time */
#define EVICT_ANY(p) \
	d_step { p < npages && evicts < maxevict && EVICTABLE(me, p) -> evicts++; evict(me, p); END_STEP; check() }

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
#ifdef BUDGET
	:: EVICT_FOR_ROOM(0)
	:: EVICT_ANY(0)
#endif
#if NPG > 1
	:: READ(1)
	:: WRITE(1)
	:: STALE(1, 0)
	:: STALE(1, 1)
	:: MIGRATE_TO(1, (me + 1) % NN)
	:: MIGRATE_TO(1, (me + 2) % NN)
#ifdef BUDGET
	:: EVICT_FOR_ROOM(1)
	:: EVICT_ANY(1)
#endif
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
	:: cn < NN ->
		assert(tst[cn] == T_IDLE); /* no thread waits forever */
		assert(wq0[cn] == 0);      /* no request waits for a frame */
		cn++
	:: else -> break
	od;
	cp = 0;
	do
	:: cp < NPG ->
		nhomes = 0;
		cn = 0;
		do
		:: cn < NN ->
			/* no request or eviction pending forever, no home awaited */
			assert(pend[I(cn, cp)] == PEND_NONE && !resv[I(cn, cp)]);
			if
			:: ishome[I(cn, cp)] ->
				nhomes++;
				/* the directory is idle ... */
				assert(txn[I(cn, cp)] == TXN_NONE && qlen[I(cn, cp)] == 0 &&
				       migto[I(cn, cp)] == NOMIG && offto[I(cn, cp)] == NOMIG);
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
/* with budgets: also reads and evictions not asked for */
#define CONFIGB(pages, w, m, st, r, ev) \
	d_step { npages = pages; maxw = w; maxmig = m; maxstale = st; maxr = r; maxevict = ev; skip }

init
{
	if
#if defined(BUDGET)
	/* budgets 2, 3, 1 (see below): node 2 caches one page of two; no
	 * stale faults (with them the search does not fit: 10 M states for
	 * the first configuration alone) */
	:: CONFIGB(NPG, 1, 1, 0, 2, 1) /* every budget branch (PROBE) */
	:: CONFIGB(NPG, 2, 1, 0, 2, 0) /* two write values */
	:: CONFIGB(NPG, 1, 2, 0, 2, 1) /* two home moves: EVICTs forwarded twice */
#elif defined(FULL)
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
#ifdef BUDGET
		/* node 0: its home page and one copy; node 1: two homes and one
		 * copy; node 2: one copy, no home (it refuses every offer) */
		assert(npages == 2);
		budget[0] = 2;
		budget[1] = 3;
		budget[2] = 1;
#endif
		cp = 0;
		do
		:: cp < NPG ->
			cn = 0;
			do
			:: cn < NN ->
				hint[I(cn, cp)] = cp % NN;
				migto[I(cn, cp)] = NOMIG;
				offto[I(cn, cp)] = NOMIG;
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
