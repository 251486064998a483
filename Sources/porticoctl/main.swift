import PorticoCtl

await PorticoCtlCommand.main()
