import NIOHPACK
import NIOHTTP1
import Testing
@testable import DataPlane

@Suite struct HTTP2ConnectionTests {
    @Test func requestHeadFromAnHPACKBlock() throws {
        let block = HPACKHeaders([
            (":method", "POST"), (":scheme", "https"), (":authority", "a.test:8443"), (":path", "/p?q=1"),
            ("host", "A.test:8443"), ("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2"),
        ])
        let head = try #require(HTTP2ProxyConnection.requestHead(block))
        #expect(head.method == .POST)
        #expect(head.uri == "/p?q=1")
        #expect(head.version == HTTPVersion(major: 2, minor: 0))
        // :authority is the Host (a Host field beside it names the same); cookie crumbs are one field again.
        #expect(head.headers.map { "\($0.name): \($0.value)" } == ["host: a.test:8443", "accept: */*", "cookie: a=1; b=2"])
    }

    /// RFC 9113 §8.3.1: a Host that differs from :authority, or a :path that is not origin-form,
    /// makes the request malformed. :method is case-sensitive: `get` is not GET.
    @Test func requestHeadRefusesDisagreeingHostAndNonOriginPaths() throws {
        let base: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":authority", "a.test")]
        #expect(HTTP2ProxyConnection.requestHead(HPACKHeaders(base + [(":path", "/"), ("host", "b.test")])) == nil)
        #expect(HTTP2ProxyConnection.requestHead(HPACKHeaders(base + [(":path", "/"), ("host", "a.test:443")])) == nil)
        for path in ["http://b.test/", "b.test/", "*", "", "?q"] {
            #expect(HTTP2ProxyConnection.requestHead(HPACKHeaders(base + [(":path", path)])) == nil, "\(path)")
        }
        let options = [(":method", "OPTIONS"), (":scheme", "https"), (":authority", "a.test"), (":path", "*")]
        #expect(HTTP2ProxyConnection.requestHead(HPACKHeaders(options))?.uri == "*")
        let lower = try #require(HTTP2ProxyConnection.requestHead(HPACKHeaders([(":method", "get"), (":scheme", "https"), (":authority", "a"), (":path", "/")])))
        #expect(lower.method != .GET && lower.method.rawValue == "get")
    }

    @Test func requestHeadWithoutAuthorityKeepsHost() throws {
        let head = try #require(HTTP2ProxyConnection.requestHead(HPACKHeaders([(":method", "GET"), (":scheme", "https"), (":path", "/"), ("host", "h.test")])))
        #expect(head.headers["host"] == ["h.test"])
        #expect(HTTP2ProxyConnection.requestHead(HPACKHeaders([(":scheme", "https"), (":path", "/")])) == nil, "no method")
    }

    /// Topped up to the target once half of it is used, as NIOHTTP2's stream channels do; a window
    /// whose update was withheld gets it all at once.
    @Test func inboundWindowTopsUpAtHalf() {
        var window = InboundWindow(target: 100)
        #expect(window.topUp() == nil, "nothing reported yet")
        window.record(80)
        #expect(window.topUp() == nil)
        window.record(50)
        #expect(window.topUp() == 50)
        #expect(window.current == 100)
        #expect(window.topUp() == nil, "already topped up")
        window.record(-20)  // a lowered SETTINGS_INITIAL_WINDOW_SIZE can make it negative
        #expect(window.topUp() == 120)
        var large = InboundWindow(target: Int(Int32.max))
        large.record(-10)
        #expect(large.topUp() == Int(Int32.max), "never more than a WINDOW_UPDATE can carry")
    }

    /// The connection's window leaves room for what the streams still hold: the client can have
    /// no more than the target sent and not taken upstream, however large the streams' windows.
    @Test func inboundWindowLeavesRoomForWhatIsHeld() {
        var window = InboundWindow(target: 100, current: 30)
        #expect(window.topUp() == 70, "the protocol's initial window is opened without a report")
        window.record(0)  // 100 bytes arrived, and the streams hold all of them
        #expect(window.topUp(holding: 100) == nil)
        #expect(window.topUp(holding: 60) == nil, "40 taken: less than half the target")
        #expect(window.topUp(holding: 50) == 50)
        #expect(window.current == 50)
        window.record(10)  // 40 more arrived: held 90 in all
        #expect(window.topUp(holding: 90) == nil, "window and holding already make the target")
        #expect(window.topUp(holding: 20) == 70)
        #expect(window.current == 80)
    }
}
