import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data = self.request.recv(1024).decode()
        self.request.sendall(data.encode())

server = socketserver.TCPServer(('localhost', int(os.environ.get("EXAMPLE_PORT", "8000"))), EchoHandler)  # port from the environment

# Get the file descriptor of the server socket
file_descriptor = server.fileno()
