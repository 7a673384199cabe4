//! Dockerfile builds: an app's Dockerfile run by the platform's own code, daemonlessly —
//! `FROM` a run image, an earlier stage or `scratch`; `RUN` in the build sandbox on the
//! stage's root filesystem; `COPY`/`ADD` from the pushed source; the config instructions
//! recorded in the image. Each RUN, COPY and ADD makes one reproducible layer, cached by its
//! inputs. What is not supported is refused with its line ([`parse`]).

mod expand;
mod parse;
