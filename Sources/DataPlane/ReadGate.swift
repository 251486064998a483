/// Backpressure by withholding `read()`: while a handler holds, the read the channel asks for is
/// kept, and issued once the hold ends. Shared by the client, upstream and tunnel handlers.
///
/// It only decides; the handler calls `context.read()` itself, outside the mutation, because a
/// read can deliver data at once and re-enter the handler.
struct ReadGate {
    private var pending = false

    /// From the handler's `read(context:)`: whether to pass the read on now.
    mutating func passes(held: Bool) -> Bool {
        if held { pending = true }
        return !held
    }

    /// After the hold may have ended: whether a kept read is now due.
    mutating func releases(held: Bool) -> Bool {
        guard !held, pending else { return false }
        pending = false
        return true
    }
}
