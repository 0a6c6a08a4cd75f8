// Times on the recording's clock: seconds from its start, shown as m:ss or h:mm:ss.

/** "1:05" for 65 s, "1:01:05" for 3665 s. */
export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** How many of `items` (sorted by .t) happen at or before `t`: a binary search. */
export function countUpTo(items, t) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].t <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The item of `pieces` ({start, end}) running at `t`, or null. */
export function pieceAt(pieces, t) {
  return pieces.find((p) => p.start <= t && t < p.end) || null;
}
