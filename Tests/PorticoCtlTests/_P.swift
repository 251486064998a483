import Testing; @testable import PorticoCtl
