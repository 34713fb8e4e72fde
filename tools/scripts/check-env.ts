// Validates the environment before `npm start` launches anything: a bad value stops here with a
// message naming the variable (CONTRACT §1).
import { loadSettingsOrExit } from '@janus/config';

loadSettingsOrExit();
