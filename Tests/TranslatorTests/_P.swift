import Testing; @testable import Translator
