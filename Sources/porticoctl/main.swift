import PorticoCtl

PorticoCtlCommand.main()
