import PorticoCtl
