//! How an app is built, as Heroku's stacks say it: with buildpacks, or from its Dockerfile
//! (the container stack).

/// How an app is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stack {
    /// The buildpack that detects the app; its Dockerfile only when none does.
    #[default]
    Buildpacks,
    /// Its Dockerfile: the one `heroku.yml`'s `build.docker` names, else `Dockerfile`.
    Container,
}

impl Stack {
    /// `buildpacks` or `container`.
    pub fn parse(text: &str) -> Result<Stack, crate::Error> {
        match text {
            "buildpacks" => Ok(Stack::Buildpacks),
            "container" => Ok(Stack::Container),
            other => Err(crate::Error::Stack(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stack::Buildpacks => "buildpacks",
            Stack::Container => "container",
        }
    }
}

impl std::fmt::Display for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_one_of_two_names() {
        for stack in [Stack::Buildpacks, Stack::Container] {
            assert_eq!(Stack::parse(stack.as_str()), Ok(stack));
        }
        assert_eq!(Stack::default(), Stack::Buildpacks);
        let error = Stack::parse("heroku-24").unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown stack \"heroku-24\": use container (build from the app's Dockerfile) or buildpacks"
        );
    }
}
