import X509; import Crypto
