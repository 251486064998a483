import ArgumentParser; import Yams
