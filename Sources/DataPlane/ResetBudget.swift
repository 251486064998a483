import NIOCore

/// How many stream resets one HTTP/2 connection may cause in a sliding window: the client's own
/// RST_STREAM frames and the resets the server sends because of what the client sent (malformed
/// requests, stream errors). Counting only the client's is what MadeYouReset (CVE-2025-8671)
/// goes around: it makes the server do the resetting, and each reset stream may already have
/// cost a request's work. No I/O: the caller passes the time.
struct ResetBudget {
    let limit: Int
    let window: TimeAmount
    /// The times of the last `limit` resets, oldest at `next` once the ring is full. Allocated at
    /// the first reset: most connections never have one.
    private var times: [NIODeadline] = []
    private var next = 0

    init(limit: Int, window: TimeAmount) {
        precondition(limit > 0)
        self.limit = limit
        self.window = window
    }

    /// Records a reset at `now`; true when it is more than `limit` within `window`.
    mutating func record(at now: NIODeadline) -> Bool {
        guard times.count == limit else {
            if times.isEmpty { times.reserveCapacity(limit) }
            times.append(now)
            return false
        }
        let oldest = times[next]
        times[next] = now
        next = (next + 1) % limit
        return now - oldest <= window
    }
}
