import { createLocalBus } from "../../bus/local-bus.js";
import { describeBusContract } from "./bus-contract.js";

describeBusContract("in-process", { create: async () => createLocalBus() });
