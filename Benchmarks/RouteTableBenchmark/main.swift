import Translator
