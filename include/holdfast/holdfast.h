// Umbrella header: the whole public API of holdfast.
#pragma once

#include "holdfast/certs.h"
#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/http.h"
#include "holdfast/init.h"
#include "holdfast/memory.h"
#include "holdfast/result.h"
#include "holdfast/server.h"
#include "holdfast/socket_options.h"
#include "holdfast/tls_options.h"
#include "holdfast/url.h"
