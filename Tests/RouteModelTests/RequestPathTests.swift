import Testing
@testable import RouteModel

@Suite struct RequestPathTests {
    @Test(arguments: [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/a//b", "/a/b"),
        ("//a///b//", "/a/b/"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/..", "/"),
        ("/../../x", "/x"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E/b", "/a/b"),
        ("/%7euser", "/~user"),
        ("/%41%42c", "/ABc"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%2Fb/../c", "/c"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a?x=1", "/a?x=1"),
        ("/a/../b?x=/../y", "/b?x=/../y"),
        ("/a#frag", "/a"),
        ("/a/..#frag", "/"),
        ("/a?q#frag", "/a?q"),
        ("/.hidden/x", "/.hidden/x"),
        ("/a/..b/c", "/a/..b/c"),
        ("/a/...", "/a/..."),
    ])
    func normalises(_ input: String, _ expected: String) throws {
        #expect(try RequestPath.normalize(input) == expected)
    }

    @Test(arguments: ["/a%", "/a%2", "/a%zz", "/%g0"])
    func rejectsBadEscapes(_ input: String) {
        #expect(throws: RequestPathError.invalidPercentEncoding) { try RequestPath.normalize(input) }
    }

    @Test(arguments: ["", "a/b", "*", "http://x/y"])
    func rejectsNonOriginForm(_ input: String) {
        #expect(throws: RequestPathError.notOriginForm) { try RequestPath.normalize(input) }
    }

    @Test func normalisationIsIdempotent() throws {
        for input in ["/a/%2e%2e/b//c/./d%7e%2f", "/x/../../y/", "/%C3%A9//z"] {
            let once = try RequestPath.normalize(input)
            #expect(try RequestPath.normalize(once) == once)
        }
    }
}
