/** The subject gate lives with the explicit filter in src/core/safety/subject.ts. */
export {
  cleanText,
  findLink,
  gateSubject,
  type SubjectGateOptions,
  stripMarkup,
  validateSubject,
} from "../safety/subject.js";
