// The landing page: only strings to fill in.
import { applyStrings } from "./strings.js";

applyStrings();
