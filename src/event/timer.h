// Convenience header: Timer and TimerWheel live in event/timer_wheel.h.
#pragma once

#include "event/timer_wheel.h"
